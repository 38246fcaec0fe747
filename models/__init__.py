"""Model code: feature registry, preprocessing, TFRS model, training and export."""

"""Evaluator that gates a recommender on RMSE and top-K retrieval accuracy."""

"""Multi-log ExampleGen: feedback logs and an item catalogue into tf.Examples."""

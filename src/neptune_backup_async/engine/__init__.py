"""The backup itself: the limiter, retries, the pipeline, and saving each object and field."""

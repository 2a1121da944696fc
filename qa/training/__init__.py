"""Training the extractive reader (``newsqa train-reader``)."""

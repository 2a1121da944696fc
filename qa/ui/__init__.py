"""The Gradio chat app (``newsqa serve``, ``app.py``)."""

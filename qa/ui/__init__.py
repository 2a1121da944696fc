"""The Gradio chat app (``newsqa serve``, ``app.py``), a front end of the ``NewsQA`` facade.

- ``app``: the Blocks app, its event handlers, launching and seeding (the only gradio import).
- ``render``: answers, citations and reports as escaped HTML, without Gradio.
- ``sources``: the Sources table's order, search and counts, without Gradio.
- ``export``: the conversation as a JSON or Markdown file to download, without Gradio.
- ``guard``: the request guard middleware (body size caps; events name uploaded files only).
"""

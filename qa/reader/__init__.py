"""The extractive reader: answer spans in retrieved chunks, located by document offsets.

- ``model``: ``Reader``, which reads (question, chunk) pairs and merges spans across windows
  and chunks, and its calibration.
- ``windows``: (question, text) pairs cut into overlapping token windows with offsets.
- ``backends``: what runs the model (torch, or ONNX Runtime): windows in, logits out.
- ``spans``: a window's logits into scored spans; the best distinct spans.

What runs a model is shared with the embedder: ``qa.runtime``.
"""

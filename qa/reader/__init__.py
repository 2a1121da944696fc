"""The extractive reader: answer spans in retrieved chunks, located by document offsets.

- ``model``: ``Reader``, which reads (question, chunk) pairs and merges spans across windows
  and chunks, and its calibration.
- ``backends``: what runs the model (torch, or ONNX Runtime): windows in, logits out.

What runs a model is shared with the embedder: ``qa.runtime``.
"""

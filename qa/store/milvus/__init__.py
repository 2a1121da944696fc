"""An index in Milvus (``milvus://``): a server or cluster, or milvus-lite in the process.
Everything a query needs lives in Milvus, so several app processes can serve one index.

- ``store``: ``MilvusStore``, the ``DocumentStore`` over generations (Milvus has no
  transactions); ``chunks``: its chunk reads and searches; ``feeds``: its feed subscriptions.
- ``client``: the location, the client (errors as one line), what the server can do.
- ``schema``: the collections, their fields and the rows a document becomes.
- ``expressions``: Milvus boolean expressions (literals, filters).
- ``lease``: the single-writer lease.
"""

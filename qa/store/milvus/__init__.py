"""An index in Milvus (``milvus://``): a server or cluster, or milvus-lite in the process.
Everything a query needs lives in Milvus, so several app processes can serve one index."""

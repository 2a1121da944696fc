"""Serve the newsqa chat app: ``python app.py [--index DIR] [--host HOST] [--port PORT]``."""
import argparse

from qa.errors import NewsQAError
from qa.ui.app import serve

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--index", default="index", help="index folder (seeded when empty)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback)")
    parser.add_argument("--port", type=int, help="port (default: first free from 7860)")
    args = parser.parse_args()
    try:
        serve(args.index, args.host, args.port)
    except NewsQAError as error:
        raise SystemExit(f"app.py: error: {error}") from None

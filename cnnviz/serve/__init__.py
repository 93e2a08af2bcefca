"""The live page: a local HTTP server (server.py) over the library API (live.py), its request
parsing (requests.py) and the page itself (page/: plain HTML, CSS and JavaScript)."""

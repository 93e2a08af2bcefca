"""Running the live server: in the foreground until Ctrl-C (the command), or from a
background thread with a handle to stop it (a notebook: cnnviz.live)."""

from __future__ import annotations

import threading

from cnnviz.serve.live import Live
from cnnviz.serve.server import LiveServer, make_server


def serve_until_interrupted(server: LiveServer) -> None:
    """Serve until Ctrl-C (KeyboardInterrupt), then close the socket: the port is free."""
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


class Running:
    """A server answering from a background thread: `.url`, `.stop()`."""

    def __init__(self, server: LiveServer):
        self.server = server
        self.url = server.url
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="cnnviz-serve", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        state = "serving" if self._thread.is_alive() else "stopped"
        return f"<cnnviz live page {state} at {self.url}>"

    def _repr_html_(self) -> str:
        return f'<a href="{self.url}" target="_blank">cnnviz live page: {self.url}</a>'

    def stop(self) -> None:
        """Stop serving and free the port."""
        if self._thread.is_alive():
            self.server.shutdown()
            self._thread.join(timeout=30)
        self.server.server_close()


def start_in_background(live: Live, host: str = "127.0.0.1", port: int = 8765) -> Running:
    """Bind, trace the model's functions, and serve from a daemon thread."""
    server = make_server(live, host, port)
    live.warm_up()
    return Running(server)

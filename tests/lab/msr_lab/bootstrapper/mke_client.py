"""The bootstrapper's MKE (UCP) client: real HTTPS from the daemon process, so CA and credential checks are real.

Errors are raised as MkeError with Go-flavoured texts (the real tool is written in Go), because users and the
collection recognise failures by them ("x509: certificate signed by unknown authority", "connection refused").
"""
from __future__ import annotations

import http.client
import json
import socket
import ssl
from urllib.parse import quote, urlsplit

TIMEOUT = 30.0      # seconds per request; the lab's MKE latency fault stays far below this


class MkeError(Exception):
    pass


def _x509(err: ssl.SSLCertVerificationError, host: str) -> str:
    code = getattr(err, "verify_code", None)
    if code in (9, 10):
        return "x509: certificate has expired or is not yet valid"
    if code == 62:
        return f"x509: certificate is not valid for {host}"
    # 18/19/20/21 and anything else: the chain does not lead to a trusted root.
    return "x509: certificate signed by unknown authority"


class MkeClient:
    def __init__(self, url: str, ca_pem: str | None = None, insecure: bool = False, timeout: float = TIMEOUT):
        if "://" not in url:
            url = "https://" + url
        parts = urlsplit(url)
        if not parts.hostname:
            raise MkeError(f"invalid UCP URL \"{url}\"")
        self.host = parts.hostname
        self.port = parts.port or 443
        self.base = f"https://{self.host}:{self.port}" if parts.port else f"https://{self.host}"
        self.timeout = timeout
        self.token: str | None = None
        if insecure:
            self.ssl = ssl._create_unverified_context()
        else:
            self.ssl = ssl.create_default_context()
            if ca_pem:
                try:
                    self.ssl.load_verify_locations(cadata=ca_pem)
                except (ssl.SSLError, ValueError) as e:
                    raise MkeError(f"unable to parse the UCP CA certificate given with --ucp-ca: {e}") from None

    def _conn(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(self.host, self.port, context=self.ssl, timeout=self.timeout)

    def _call(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        conn = self._conn()
        hdrs = {"Accept": "application/json", **(headers or {})}
        if self.token:
            hdrs["Authorization"] = f"Bearer {self.token}"
        if body is not None:
            hdrs["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            return resp.status, resp.read(), resp.getheader("Content-Type", "")
        except ssl.SSLCertVerificationError as e:
            raise MkeError(f'{method.title()} "{self.base}{path}": {_x509(e, self.host)}') from None
        except ssl.SSLError as e:
            raise MkeError(f'{method.title()} "{self.base}{path}": remote error: tls: {e.reason or e}') from None
        except ConnectionRefusedError:
            raise MkeError(f'{method.title()} "{self.base}{path}": dial tcp {self.host}:{self.port}: '
                           f"connect: connection refused") from None
        except (socket.timeout, TimeoutError):
            raise MkeError(f'{method.title()} "{self.base}{path}": dial tcp {self.host}:{self.port}: '
                           f"i/o timeout") from None
        except (OSError, http.client.HTTPException) as e:
            raise MkeError(f'{method.title()} "{self.base}{path}": {e}') from None
        finally:
            conn.close()

    def handshake(self) -> None:
        """Only the TLS handshake: validates the UCP certificate without depending on any endpoint."""
        conn = self._conn()
        try:
            conn.connect()
        except ssl.SSLCertVerificationError as e:
            raise MkeError(f"unable to verify the UCP certificate at {self.base}: {_x509(e, self.host)}") from None
        except ConnectionRefusedError:
            raise MkeError(f"dial tcp {self.host}:{self.port}: connect: connection refused") from None
        except (socket.timeout, TimeoutError):
            raise MkeError(f"dial tcp {self.host}:{self.port}: i/o timeout") from None
        except (OSError, ssl.SSLError) as e:
            raise MkeError(f"unable to connect to UCP at {self.base}: {e}") from None
        finally:
            conn.close()

    def login(self, username: str, password: str) -> None:
        body = json.dumps({"username": username, "password": password}).encode()
        status, data, _ = self._call("POST", "/auth/login", body)
        if status in (401, 403):
            raise MkeError("Invalid UCP credentials: the UCP username or password is incorrect "
                           f"(POST {self.base}/auth/login: {status} Unauthorized)")
        if status != 200:
            raise MkeError(f"unexpected status {status} from UCP at POST {self.base}/auth/login: {_short(data)}")
        try:
            self.token = json.loads(data)["auth_token"]
        except (ValueError, KeyError, TypeError):
            raise MkeError(f"unexpected answer from UCP at POST {self.base}/auth/login") from None

    def get(self, path: str):
        status, data, _ = self._call("GET", path)
        if status != 200:
            raise MkeError(f"unexpected status {status} from UCP at GET {self.base}{path}: {_short(data)}")
        try:
            return json.loads(data)
        except ValueError:
            raise MkeError(f"unexpected answer from UCP at GET {self.base}{path}") from None

    # ---- the Engine API through MKE (what the bootstrapper runs and removes on the nodes) ----------

    def engine(self, method: str, path: str, body: dict | None = None, ok=(200, 201, 204, 304)):
        """A proxied Engine API call; MkeError with the text the docker client shows on failure."""
        status, data, ctype = self._call(method, path, None if body is None else json.dumps(body).encode())
        if status in ok:
            return json.loads(data) if data.strip() and ctype.startswith("application/json") else None
        raise MkeError(f"Error response from daemon: {daemon_message(data, ctype)}")

    def run_container(self, node: str, name: str, image: str, cmd: list[str], labels: dict) -> str:
        """Create and start `name` on `node` through MKE's scheduler; the container id."""
        body = {"Image": image, "Cmd": cmd, "Labels": labels, "Env": [f"constraint:node=={node}"]}
        created = self.engine("POST", f"/containers/create?name={quote(name)}", body)
        self.engine("POST", f"/containers/{created['Id']}/start")
        return created["Id"]

    def remove_container(self, ref: str) -> bool:
        """Force-remove a container (`<node>/<name>` or id); False if it was not there."""
        try:
            self.engine("DELETE", f"/containers/{quote(ref, safe='/')}?force=1")
        except MkeError as e:
            if "No such container" in str(e):
                return False
            raise
        return True

    def volumes(self) -> list[str]:
        """`<node>/<name>` of every volume on the nodes MKE reaches."""
        return [v["Name"] for v in (self.engine("GET", "/volumes") or {}).get("Volumes") or []]

    def remove_volume(self, ref: str) -> None:
        self.engine("DELETE", f"/volumes/{quote(ref, safe='/')}?force=1")

    def nodes(self) -> dict[str, dict]:
        """hostname -> {role, state, availability, addr} from GET /nodes."""
        out = {}
        for n in self.get("/nodes") or []:
            host = (n.get("Description") or {}).get("Hostname")
            if host:
                out[host] = {"role": (n.get("Spec") or {}).get("Role", ""),
                             "availability": (n.get("Spec") or {}).get("Availability", "active"),
                             "state": (n.get("Status") or {}).get("State", ""),
                             "addr": (n.get("Status") or {}).get("Addr", "")}
        return out

    def replica_containers(self) -> dict[str, dict]:
        """replica id -> {node, state} from the dtr-rethinkdb-* containers MKE reports (all states)."""
        filters = quote(json.dumps({"name": ["dtr-rethinkdb-"]}))
        out = {}
        for c in self.get(f"/containers/json?all=1&filters={filters}") or []:
            names = c.get("Names") or []
            full = names[0].lstrip("/") if names else ""
            node, _, cname = full.rpartition("/")
            if not cname.startswith("dtr-rethinkdb-"):
                continue
            labels = c.get("Labels") or {}
            rid = labels.get("com.docker.dtr.replica") or cname[len("dtr-rethinkdb-"):]
            out[rid] = {"node": node, "state": c.get("State", "")}
        return out


def daemon_message(data: bytes, ctype: str) -> str:
    """What the Go docker client prints after "Error response from daemon: ": the JSON message when the
    answer is exactly application/json, the raw body otherwise (engine-api.md §0)."""
    if ctype == "application/json":
        try:
            return str(json.loads(data)["message"])
        except (ValueError, KeyError, TypeError):
            pass
    return data.decode("utf-8", "replace").strip()


def _short(data: bytes) -> str:
    text = data.decode("utf-8", "replace").strip()
    return text[:200] or "(empty body)"

"""Access tokens of a simulated shop: configured static tokens and the client-credentials grant.

``POST /admin/oauth/access_token`` with ``grant_type=client_credentials&client_id=…&client_secret=…``
(form-encoded, or the same keys as JSON) answers ``{"access_token", "scope", "expires_in"}`` like
Shopify's Dev Dashboard apps (shopify-api-facts §9). Errors follow OAuth 2 (RFC 6749 §5.2):
400 ``invalid_request`` / ``unsupported_grant_type``, 401 ``invalid_client``.

Each token maps to an *app*: the bucket key. Static tokens are one app each; every token issued to
a client id belongs to that client's app, so a refreshed token keeps draining the same bucket (one
bucket per app and store, as on Shopify).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from shopsync.simulator.config import SimConfig

#: Shopify's 401 body for a missing, unknown, expired or revoked token.
INVALID_TOKEN_BODY = {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}


@dataclass(frozen=True, kw_only=True)
class GrantAnswer:
    """The HTTP status and JSON body of one token request."""

    status: int
    body: dict


@dataclass(frozen=True, kw_only=True)
class _Issued:
    app: str
    expires_at: float


class TokenRegistry:
    """Which tokens a shop accepts right now. Pure bookkeeping; the clock is injected."""

    def __init__(self, config: SimConfig, *, clock: Callable[[], float]) -> None:
        self._config = config
        self._clock = clock
        self._static: dict[str, str] = {t: f"static:{i}" for i, t in enumerate(config.access_tokens)}
        self._issued: dict[str, _Issued] = {}
        self.issued_count = 0

    def app_for(self, token: str | None) -> str | None:
        """The app (bucket key) a token belongs to, or ``None`` if it is not valid now."""
        if not token:
            return None
        app = self._static.get(token)
        if app is not None:
            return app
        issued = self._issued.get(token)
        if issued is None:
            return None
        if self._clock() >= issued.expires_at:
            del self._issued[token]
            return None
        return issued.app

    def add_token(self, token: str) -> None:
        """Accept one more static token (tests: a second app on the same shop)."""
        self._static.setdefault(token, f"static:{len(self._static)}")

    def revoke_tokens(self, *, static: bool = False) -> int:
        """Revoke every issued token (and the static ones with ``static=True``); returns how many."""
        n = len(self._issued)
        self._issued.clear()
        if static:
            n += len(self._static)
            self._static.clear()
        return n

    def grant(self, form: Mapping[str, str]) -> GrantAnswer:
        """Answer one ``/admin/oauth/access_token`` request."""
        grant_type = form.get("grant_type")
        client_id = form.get("client_id")
        client_secret = form.get("client_secret")
        if not grant_type or not client_id or not client_secret:
            missing = [k for k in ("grant_type", "client_id", "client_secret") if not form.get(k)]
            return GrantAnswer(
                status=400,
                body={"error": "invalid_request", "error_description": f"Missing required parameter(s): {', '.join(missing)}."},
            )
        if grant_type != "client_credentials":
            return GrantAnswer(
                status=400,
                body={
                    "error": "unsupported_grant_type",
                    "error_description": "The authorization grant type is not supported by the authorization server.",
                },
            )
        cfg = self._config
        if cfg.client_id is None or cfg.client_secret is None:
            ok = False
        else:
            # Constant-time comparison, as a real server would do for a secret.
            ok = secrets.compare_digest(client_id, cfg.client_id) and secrets.compare_digest(client_secret, cfg.client_secret)
        if not ok:
            return GrantAnswer(
                status=401,
                body={
                    "error": "invalid_client",
                    "error_description": "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.",
                },
            )
        token = "shpat_" + secrets.token_hex(16)
        ttl = cfg.issued_token_ttl
        self._issued[token] = _Issued(app=f"client:{client_id}", expires_at=self._clock() + ttl)
        self.issued_count += 1
        return GrantAnswer(
            status=200,
            body={"access_token": token, "scope": ",".join(cfg.scopes), "expires_in": int(ttl) if ttl == int(ttl) else ttl},
        )

    def __repr__(self) -> str:  # never the tokens themselves
        return f"TokenRegistry(static={len(self._static)}, issued={len(self._issued)})"

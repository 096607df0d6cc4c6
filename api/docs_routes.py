"""The API's own description pages, `/docs` (Swagger UI) and `/redoc`, served offline.

FastAPI's default pages load Swagger UI and ReDoc from a public CDN, so they stay blank
on a machine without internet. Here the pages load the same files from CarePath itself:
the `fastapi-offline` package ships Swagger UI's bundle and style sheet and ReDoc's
standalone script, served under `/docs/assets/`. Nothing on either page names another
host, so the page-exact Content-Security-Policy (api.limits) allows only `'self'`.
"""

from __future__ import annotations

import html
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

# Where the files are served: cacheable and outside the access log, like the pages.
from api.limits import DESCRIPTION_ASSETS_PREFIX

# Swagger UI's and ReDoc's files, as the package ships them.
ASSETS_DIRECTORY = Path(fastapi_offline.__file__).parent / "static"

# Swagger UI would otherwise ask a public validator about the description and show its
# badge; the description is checked by the tests (tests/integration/test_api_schema.py).
SWAGGER_UI_PARAMETERS = {"validatorUrl": None}

# FastAPI's ReDoc page, less its web fonts, and with ReDoc's search off: the search
# index runs in a worker made from a `blob:` URL, which the page's policy does not allow.
# (ReDoc's side menu also shows its vendor's logo from that vendor's host: the policy
# refuses the image, ReDoc then leaves it out, and no request leaves the machine.)
REDOC_PAGE = """<!DOCTYPE html>
<html>
<head>
<title>{title}</title>
<meta charset="utf-8"/>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="shortcut icon" href="{favicon}">
<style>body {{ margin: 0; padding: 0; }}</style>
</head>
<body>
<noscript>ReDoc needs JavaScript; the same description is at /openapi.json.</noscript>
<redoc spec-url="{spec}" disable-search="true"></redoc>
<script src="{script}"></script>
</body>
</html>
"""


def install_offline_docs(
    app: FastAPI, *, docs_url: str = "/docs", redoc_url: str = "/redoc"
) -> None:
    """Add `docs_url`, its OAuth2 redirect page, `redoc_url` and their assets to `app`.

    `app` must have been created with `docs_url=None, redoc_url=None`, so that FastAPI's
    own CDN-backed pages are not registered first.
    """
    openapi_url = app.openapi_url or "/openapi.json"
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url or f"{docs_url}/oauth2-redirect"
    assets = DESCRIPTION_ASSETS_PREFIX.rstrip("/")
    app.mount(assets, StaticFiles(directory=ASSETS_DIRECTORY), name="docs-assets")

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{oauth2_redirect_url}",
            swagger_js_url=f"{root}{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{assets}/swagger-ui.css",
            swagger_favicon_url=f"{root}{assets}/favicon.png",
            swagger_ui_parameters={**(app.swagger_ui_parameters or {}), **SWAGGER_UI_PARAMETERS},
        )

    @app.get(oauth2_redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(redoc_url, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return HTMLResponse(
            REDOC_PAGE.format(
                title=html.escape(f"{app.title} - ReDoc"),
                favicon=html.escape(f"{root}{assets}/favicon.png"),
                spec=html.escape(f"{root}{openapi_url}"),
                script=html.escape(f"{root}{assets}/redoc.standalone.js"),
            )
        )

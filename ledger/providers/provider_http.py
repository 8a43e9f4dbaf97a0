"""The one place where the REST gateways (PayU, PayPal) touch ``requests``.

It turns transport trouble into domain errors so that each gateway only
handles the answers it understands: a timeout, a refused connection, a 5xx or a
429 is an outage (:class:`ProviderUnavailable`, retry later), never a crash
and never a half-recorded registration.  Redirects are never followed: PayU
answers a created order with ``302`` and the body is what we need.
"""

from __future__ import annotations

import json
from typing import Any

import requests

from ledger.errors import NotificationMalformed, ProviderUnavailable
from ledger.providers.base import ProviderRejectedRequest

JSON = dict[str, Any]


def send(
    provider: str,
    method: str,
    url: str,
    *,
    timeout: float,
    **kwargs: Any,
) -> requests.Response:
    """One HTTP call; outages become :class:`ProviderUnavailable`.

    The messages name the provider and the kind of failure but never the URL
    query or the headers, which may carry tokens.
    """
    try:
        response = requests.request(method, url, timeout=timeout, allow_redirects=False, **kwargs)
    except requests.Timeout as exc:
        raise ProviderUnavailable(f"{provider} did not answer within {timeout:g} s; try again later") from exc
    except requests.RequestException as exc:
        raise ProviderUnavailable(f"{provider} could not be reached ({type(exc).__name__}); try again later") from exc
    if response.status_code >= 500 or response.status_code == 429:
        raise ProviderUnavailable(f"{provider} is unavailable (HTTP {response.status_code}); try again later")
    return response


def json_of(provider: str, response: requests.Response) -> JSON:
    """The JSON object of a response, or a clear refusal if it is not one."""
    try:
        body = response.json()
    except (ValueError, json.JSONDecodeError):
        raise ProviderRejectedRequest(f"{provider} answered HTTP {response.status_code} without a JSON body") from None
    if not isinstance(body, dict):
        raise ProviderRejectedRequest(f"{provider} answered with unexpected JSON")
    return body


def parse_json_body(provider: str, raw_body: bytes) -> JSON:
    """Decode a verified webhook body; a body that is not a JSON object is
    refused as a malformed request rather than crashing the handler."""
    try:
        body = json.loads(raw_body)
    except (ValueError, UnicodeDecodeError):
        raise ProviderRejectedRequest(f"{provider} notification is not JSON") from None
    except RecursionError:  # e.g. 30,000 nested "[": a 400, never a 500 the provider retries
        raise NotificationMalformed(f"{provider} notification is nested too deeply") from None
    if not isinstance(body, dict):
        raise ProviderRejectedRequest(f"{provider} notification is not a JSON object")
    return body

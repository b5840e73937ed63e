"""One OpenAI-compatible endpoint, asked for JSON answers: its client, timeout, retries and breaker.

Scoring leads and classifying replies both ask the configured model; they share one `LlmClient`
(see `leads.scoring.factory.configured_llm`), so a dead endpoint opens one breaker for both.
A timeout, a connection error, a 429, a 5xx or a malformed answer is retried with backoff and
jitter; what still fails, or meets any other API error (a 400 or 401 will not mend by retrying),
raises `LlmUnavailable` with the reason in words safe to log. The breaker counts failed
questions, not attempts.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

import openai
from django.conf import settings
from openai.types.shared_params import ResponseFormatJSONSchema

from leads.scoring.types import LlmUnavailable
from pipeline_whisperer.exceptions import LlmError
from pipeline_whisperer.resilience import CircuitBreaker, retry_call

logger = logging.getLogger(__name__)
T = TypeVar("T")
__all__ = ["RETRYABLE_ERRORS", "LlmClient", "LlmUnavailable"]

# Worth another attempt: the endpoint was slow, unreachable, busy or broken, or answered nonsense.
RETRYABLE_ERRORS: tuple[type[BaseException], ...] = (
    openai.APITimeoutError,
    openai.APIConnectionError,
    openai.RateLimitError,
    openai.InternalServerError,
    LlmError,
)


class LlmClient:
    """Asks the configured model one question at a time (`ask`); never retries past its settings.

    A class because it holds state across questions: the API client with its connection pool,
    and the circuit breaker. It reads the model settings once, when built. Safe to share between
    threads. `base_delay`/`max_delay` shape the backoff; `rng`, `clock` and `sleep` are for tests.
    """

    def __init__(
        self,
        *,
        base_delay: float = 0.5,
        max_delay: float = 8.0,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.model = settings.OPENAI_MODEL
        self.max_attempts = settings.LLM_MAX_ATTEMPTS
        self.breaker = CircuitBreaker(
            failure_threshold=settings.LLM_BREAKER_FAILURES,
            reset_timeout=settings.LLM_BREAKER_RESET_SECONDS,
            clock=clock,
        )
        # Our own retries, not the SDK's, so that the breaker counts whole questions.
        self._client = openai.OpenAI(
            api_key=settings.OPENAI_API_KEY,
            base_url=settings.OPENAI_BASE_URL or None,
            timeout=settings.LLM_TIMEOUT_SECONDS,
            max_retries=0,
        )
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._rng = rng or random.Random()  # noqa: S311 -- jitter, not cryptography
        self._sleep = sleep

    def ask(
        self,
        *,
        system: str,
        user: str,
        response_format: ResponseFormatJSONSchema,
        parse: Callable[[str | None], T],
    ) -> T:
        """The model's answer to `user` (data, never instructions: `system` says so), read by
        `parse` (which raises LlmError for an answer that breaks the schema). LlmUnavailable when
        the breaker is open or the attempts ran out."""
        if not self.breaker.allow():
            raise LlmUnavailable("llm circuit breaker open")
        attempts = 0

        def attempt() -> T:
            nonlocal attempts
            attempts += 1
            completion = self._client.chat.completions.create(
                model=self.model,
                messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
                response_format=response_format,
            )
            try:
                content = completion.choices[0].message.content
            except (AttributeError, IndexError, TypeError) as error:
                raise LlmError("malformed answer: no message") from error
            return parse(content)

        try:
            result = retry_call(
                attempt,
                attempts=self.max_attempts,
                base_delay=self._base_delay,
                max_delay=self._max_delay,
                retry_on=RETRYABLE_ERRORS,
                rng=self._rng,
                sleep=self._sleep,
            )
        except (openai.OpenAIError, LlmError) as error:
            self.breaker.record_failure()
            tries = "attempt" if attempts == 1 else "attempts"
            raise LlmUnavailable(f"llm unavailable: {_describe(error)} after {attempts} {tries}") from None
        except BaseException:
            self.breaker.record_failure()  # a bug of ours must not leave a half-open trial out forever
            raise
        self.breaker.record_success()
        return result


def _describe(error: BaseException) -> str:
    """Why the call failed, in words safe to log: never the server's message, which may echo the key."""
    if isinstance(error, openai.APITimeoutError):
        return "timeout"
    if isinstance(error, openai.APIConnectionError):
        return "connection error"
    if isinstance(error, openai.RateLimitError):
        return "rate limited (HTTP 429)"
    if isinstance(error, openai.APIStatusError):
        return f"HTTP {error.status_code}"
    if isinstance(error, LlmError):
        return error.message
    return type(error).__name__

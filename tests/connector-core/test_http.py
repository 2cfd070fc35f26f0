"""The request budget and the retry wait, with a fake clock so that nothing actually sleeps; the announcement of long
waits, through the shared API client over real HTTP to the Jira stand-in."""

import email.utils
import logging
import re
import socket
import threading
import time

import pytest
import requests

from ml_connector_core.http import RequestBudget, connection_never_made, retry_after_seconds, retry_waits, shown_url
from ml_connector_core.jira import client_from_config
from mlc_sandbox.jira import JiraSandbox


class FakeClock:
    def __init__(self):
        self.now = 1000.0
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def test_budget_lets_the_allowance_through_then_waits_for_the_window():
    clock = FakeClock()
    budget = RequestBudget(3, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        assert budget.acquire() == 0
    clock.now += 10
    waited = budget.acquire()
    assert waited == 50  # the first request leaves the 60 s window 50 s later
    assert clock.slept == [50]


def _response(retry_after):
    response = requests.Response()
    response.status_code = 429
    if retry_after is not None:
        response.headers["Retry-After"] = retry_after
    return response


def test_retry_after_as_seconds_and_as_http_date():
    assert retry_after_seconds(_response("7")) == 7
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= retry_after_seconds(_response(future)) <= 31
    assert retry_after_seconds(_response(None)) is None
    assert retry_after_seconds(_response("soon")) is None


class _Failure(Exception):
    def __init__(self, response=None, retry_immediately=False):
        self.response = response
        self.retry_immediately = retry_immediately


def test_retry_waits_honour_retry_after_and_otherwise_grow():
    waits = retry_waits(base=1, factor=2, cap=8)
    waits.send(None)
    assert waits.send(_Failure(_response("4"))) == 4
    assert waits.send(_Failure(retry_immediately=True)) == 0
    later = [waits.send(_Failure()) for _ in range(6)]
    assert all(0 <= w <= 8 for w in later)


# --- Saying so when a wait is long ---


def test_a_long_budget_wait_is_announced_once_and_short_ones_not(caplog):
    caplog.set_level(logging.DEBUG, logger="ml_connector_core.http")
    clock = FakeClock()
    budget = RequestBudget(2, name="jira:https://acme.atlassian.net", clock=clock, sleep=clock.sleep)
    budget.acquire()
    clock.now += 57
    budget.acquire()
    budget.acquire()  # waits 3 s for the first request to leave the window: not worth a line
    assert clock.slept == [3]
    assert _info_lines(caplog) == []
    budget.acquire()  # waits 57 s for the second (sent at 1057) to leave it
    assert clock.slept == [3, 57]
    assert _info_lines(caplog) == [
        "Waiting 57 s for the client-side request budget of jira:https://acme.atlassian.net (requests_per_minute 2) "
        "to allow the next request"]


def test_threads_queued_behind_one_full_budget_add_no_line_of_their_own(caplog):
    caplog.set_level(logging.INFO, logger="ml_connector_core.http")
    clock = FakeClock()
    all_waiting = threading.Barrier(3, timeout=10)
    lock = threading.Lock()
    first_sleep = threading.local()

    def sleep(seconds):
        if not getattr(first_sleep, "done", False):  # every thread has seen the full window before any time passes
            first_sleep.done = True
            all_waiting.wait()
        with lock:
            clock.now += seconds

    budget = RequestBudget(1, name="ifs", clock=clock, sleep=sleep)
    budget.acquire()
    waiters = [threading.Thread(target=budget.acquire) for _ in range(3)]
    for waiter in waiters:
        waiter.start()
    for waiter in waiters:
        waiter.join(timeout=10)
    assert not any(waiter.is_alive() for waiter in waiters)
    assert len(_info_lines(caplog)) == 1


def _info_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]


@pytest.fixture
def jira():
    with JiraSandbox(port=0) as stand_in:
        yield stand_in


def _jira_client(jira, **settings):
    return client_from_config({"base_url": jira.base_url, "email": jira.email, "api_token": jira.api_token, **settings})


def test_a_long_retry_after_is_announced_in_one_info_line_per_wait(jira, caplog):
    caplog.set_level(logging.DEBUG, logger="ml_connector_core.jira")
    client = _jira_client(jira, max_tries=4)
    jira.throttle(count=1, retry_after=6)
    assert client.myself()["emailAddress"] == jira.email
    [line] = _info_lines(caplog)
    assert re.fullmatch(rf"Waiting [67]\.\d s before retrying GET {re.escape(jira.base_url)}/rest/api/3/myself "
                        r"\(HTTP 429, Retry-After 6\), attempt 2 of 4", line), line


def test_short_retry_waits_say_nothing_at_info(jira, caplog):
    caplog.set_level(logging.DEBUG, logger="ml_connector_core.jira")
    client = _jira_client(jira, max_tries=4)
    jira.throttle(count=2, retry_after=1)
    assert client.myself()["emailAddress"] == jira.email
    assert _info_lines(caplog) == []
    # ... but they are there for whoever turns on DEBUG.
    waits = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Waiting ")]
    assert len(waits) == 2 and all("(HTTP 429, Retry-After 1)" in w for w in waits)


def test_the_shown_url_has_no_query_nor_credentials():
    assert shown_url("https://user:pw@host.example:8443/workflows/abc/invoke?api-version=1&sig=SECRET") == (
        "https://host.example:8443/workflows/abc/invoke")
    assert shown_url("http://127.0.0.1/x?sig=1") == "http://127.0.0.1/x"


def _failure(url: str, **options) -> requests.RequestException:
    with pytest.raises(requests.RequestException) as caught:
        requests.post(url, json={"card": 1}, **options)
    return caught.value


def test_only_a_connection_never_made_is_known_not_to_have_reached_the_server():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        free_port = unused.getsockname()[1]
    assert connection_never_made(_failure(f"http://127.0.0.1:{free_port}/x"))  # refused
    assert connection_never_made(_failure("http://no-such-host.invalid/x"))  # name not resolved

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        url = f"http://127.0.0.1:{server.getsockname()[1]}/x"
        received = []

        def read_then(close: bool) -> None:
            connection, _ = server.accept()
            received.append(connection.recv(65536))
            if close:
                connection.close()  # the request arrived; the answer never comes
            else:
                threading.Event().wait(2)  # no answer in time
                connection.close()

        for close, options in ((True, {}), (False, {"timeout": (5, 0.5)})):
            reader = threading.Thread(target=read_then, args=(close,))
            reader.start()
            failure = _failure(url, **options)
            reader.join()
            assert received[-1].startswith(b"POST /x") and not connection_never_made(failure), failure

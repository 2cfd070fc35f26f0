"""The request budget and the retry wait, with a fake clock so that nothing actually sleeps."""

import email.utils
import time

import requests

from ml_connector_core.http import RequestBudget, retry_after_seconds, retry_waits


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

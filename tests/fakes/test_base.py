"""The fake harness itself: routes, faults, hangs and the recorded requests."""

from __future__ import annotations

import pytest
import requests

from .base import FakeRequest, FakeResponse, FakeService, route


class Echo(FakeService):
    @route("GET", r"/items/(?P<item>\d+)")
    def item(self, request: FakeRequest) -> FakeResponse:
        return FakeResponse(200, {"item": int(request.params["item"]), "q": request.arg("q")})

    @route("POST", r"/items")
    def create(self, request: FakeRequest) -> FakeResponse:
        return FakeResponse(201, request.json())


@pytest.fixture
def echo():
    with Echo() as fake:
        yield fake


def test_a_route_answers_with_its_path_parameters_and_query(echo):
    answer = requests.get(f"{echo.url}/items/7?q=x", timeout=5)
    assert answer.status_code == 200 and answer.json() == {"item": 7, "q": "x"}
    assert requests.post(f"{echo.url}/items", json={"a": 1}, timeout=5).json() == {"a": 1}
    assert [r.path for r in echo.sent("POST", r"^/items$")] == ["/items"]


def test_unknown_paths_and_methods_are_404_and_405(echo):
    assert requests.get(f"{echo.url}/nothing", timeout=5).status_code == 404
    assert requests.delete(f"{echo.url}/items/1", timeout=5).status_code == 405


def test_a_fault_answers_the_next_matching_requests_then_stops(echo):
    echo.fail_next("GET", r"/items/", 429, {"error": "slow down"}, {"Retry-After": "3"}, times=2)
    first = requests.get(f"{echo.url}/items/1", timeout=5)
    assert first.status_code == 429 and first.headers["Retry-After"] == "3"
    assert requests.get(f"{echo.url}/items/1", timeout=5).status_code == 429
    assert requests.get(f"{echo.url}/items/1", timeout=5).status_code == 200


def test_a_hang_runs_into_the_clients_timeout(echo):
    echo.fail_next("GET", r"/items/", hang_seconds=1.0)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(f"{echo.url}/items/1", timeout=0.3)


def test_the_clock_moves_only_when_told(echo):
    before = echo.now()
    echo.advance(3600)
    assert 3599 < echo.now() - before < 3601

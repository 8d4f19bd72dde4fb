from __future__ import annotations

from autoray.engine.progress import RunProgress, format_duration, render_progress


def _progress(**overrides) -> RunProgress:
    base = dict(
        run_id="r",
        status="running",
        cases_done=30,
        cases_total=120,
        errors=2,
        lanes_total=6,
        lanes={"running": 4, "finished": 1, "dead": 1},
        elapsed_s=60.0,
    )
    base.update(overrides)
    return RunProgress(**base)


def test_eta_is_linear_in_the_rate_so_far() -> None:
    assert _progress().eta_s == 180.0
    assert _progress(cases_done=0).eta_s is None


def test_render_shows_cases_lanes_errors_and_times() -> None:
    line = render_progress(_progress())
    assert "30/120 cases" in line
    assert "lanes run 4" in line and "done 1" in line and "dead 1" in line
    assert "errors 2" in line
    assert "01:00 elapsed" in line and "ETA 03:00" in line


def test_round_trip_through_dict_keeps_derived_fields_out_of_the_constructor() -> None:
    progress = _progress(table_version="rt-1")
    data = progress.as_dict()
    assert data["dead_lanes"] == 1 and data["eta_s"] == 180.0
    assert RunProgress.from_dict(data) == progress


def test_format_duration() -> None:
    assert format_duration(None) == "--:--"
    assert format_duration(59.6) == "01:00"
    assert format_duration(3725) == "1:02:05"


def test_empty_run_counts_as_done() -> None:
    assert _progress(cases_done=0, cases_total=0).fraction == 1.0


def test_progress_from_the_database_leaves_unknown_lane_states_out() -> None:
    stored = _progress(lanes_total=0, lanes={})
    assert "lanes" not in render_progress(stored)
    assert "dead lanes 2" in render_progress(_progress(lanes_total=0, lanes={"dead": 2}))

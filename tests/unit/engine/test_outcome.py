from sflow.engine.unit import Outcome, ended_before_ready


def test_a_failure_judged_from_an_end_keeps_its_exit_code_and_info():
    ended = Outcome(ok=True, reason="exit code 0", exit_code=0, info={"pid": 7}, retryable=False)
    failed = ended.failed("upload failed: s3://b/k: denied")
    assert failed == Outcome(ok=False, reason="upload failed: s3://b/k: denied", exit_code=0, info={"pid": 7})
    assert not ended.failed("mistake", retryable=False).retryable


def test_an_end_before_ready_says_how_it_ended():
    assert ended_before_ready(Outcome(ok=False, reason="exit code 3", exit_code=3)) == Outcome(
        ok=False, reason="exited before it became ready (exit code 3)", exit_code=3
    )
    assert ended_before_ready(Outcome(ok=True)).reason == "exited before it became ready (exit code 0)"

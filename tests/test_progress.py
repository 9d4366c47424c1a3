import io

from minasd.progress import tqdm


def test_tqdm_disable_env_wins_over_explicit_disable_false(monkeypatch):
    buf = io.StringIO()
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert list(tqdm(range(3), disable=False, file=buf)) == [0, 1, 2]
    assert buf.getvalue() == ""
    monkeypatch.delenv("TQDM_DISABLE")
    list(tqdm(range(3), disable=False, file=buf))
    assert "3/3" in buf.getvalue()

"""The fingerprint of the code the components run (cache keys of upgraded code)."""

import pytest


def test_the_code_version_follows_the_sources_the_components_run(tmp_path):
    from pipeline.source import source_version

    for package in ("components", "models", "pipeline"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "a.py").write_text("x = 1\n")
    before = source_version(str(tmp_path))
    assert source_version(str(tmp_path)) == before
    (tmp_path / "pipeline" / "a.py").write_text("x = 2\n")  # assembles, runs nothing
    assert source_version(str(tmp_path)) == before
    (tmp_path / "models" / "a.py").write_text("x = 2\n")
    assert source_version(str(tmp_path)) != before
    with pytest.raises(ValueError, match="no Python sources"):
        source_version(str(tmp_path / "nowhere"))

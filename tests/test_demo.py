"""The README's demo runs end to end and writes its two pictures."""

import importlib.util
from pathlib import Path

DEMO = Path(__file__).resolve().parents[1] / "benchmarks" / "digits_demo.py"


def load_demo():
    spec = importlib.util.spec_from_file_location("digits_demo", DEMO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_prints_the_comparison_and_writes_pictures(tmp_path, capsys):
    demo = load_demo()
    rows = demo.main(
        ["--output-dir", str(tmp_path), "--n-components", "2", "--max-iter", "3"]
    )
    assert [row["model"] for row in rows] == ["PCA", "VAETransformer"]
    out = capsys.readouterr().out
    assert "| PCA | 2 |" in out and "| VAETransformer | 2 |" in out
    for name in ("latent_space.png", "generated_digits.png"):
        path = tmp_path / name
        assert path.stat().st_size > 10_000
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

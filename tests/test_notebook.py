"""Results in a notebook: a compact repr (never every per-network array) and
an HTML one, a map's with its image."""
import html

import numpy as np
import pytest

import fastxor


def _check(obj, name, summary):
    text = repr(obj)
    assert text == f"{name}(\n{summary}\n)" and len(text) < 4000
    page = obj._repr_html_()
    assert f"<b>fastxor.{name}</b>" in page and html.escape(summary) in page


def test_results_statistics_and_landscapes_show_their_summaries():
    r = fastxor.train(300, epochs=200, lr=np.linspace(0.1, 2, 300))
    _check(r, "TrainResult", r.summary())
    st = r.statistics()
    _check(st, "Stats", st.summary())
    land = r.analyse(probe_epochs=50)
    _check(land, "Landscape", land.summary())


def test_a_map_shows_its_image_and_summary():
    pytest.importorskip("matplotlib")
    m = fastxor.lr_map(resolution=16, epochs=100)
    page = m._repr_html_()
    assert 'src="data:image/png;base64,' in page and html.escape(m.summary()) in page
    assert repr(m).startswith("<fastxor.Map lr 16 x 16, 100 epochs")

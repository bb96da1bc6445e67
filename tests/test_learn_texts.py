"""The teaching texts outside the Learn page say what PoF does: η* minimises the weak batch's loss
along −g; nothing calls PoF's perturbation a worst case."""

import re

from conftest import ROOT
from streamlit.testing.v1 import AppTest


def test_the_post_train_page_says_eta_star_minimises_the_weak_batch_loss(runs_root):
    at = AppTest.from_file(str(ROOT / "app" / "views" / "posttrain.py"), default_timeout=60).run()
    assert not at.exception
    (caption,) = [c.value for c in at.caption if c.value.startswith("PoF:")]
    assert "worst case" not in caption
    assert "minimises that batch's loss along −g" in caption and "U(0, gamma max)" in caption
    method = next(w for w in at.selectbox if w.label == "Method")
    assert "worst case" not in (method.help or "")


def test_no_text_calls_pofs_perturbation_a_worst_case():
    files = [*ROOT.glob("app/**/*.py"), ROOT / "README.md", *ROOT.glob("docs/*.md")]
    for path in files:
        # one sentence at a time; the only one allowed says that it is *not* a worst case
        for sentence in re.split(r"(?<=[.;:])\s", path.read_text()):
            if re.search(r"worst[ -]case", sentence) and re.search(r"weak|PoF|η\*", sentence):
                assert "not a worst case" in sentence, (path.name, sentence)

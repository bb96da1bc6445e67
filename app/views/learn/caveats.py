"""Learn, chapter 5: The caveats (app.learn.s5_caveats)."""

from app.learn import chapters, s5_caveats

chapters.show(5, s5_caveats.caveats)

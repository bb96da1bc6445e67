"""Learn, chapter 6: The edge of stability (app.learn.s6_stability)."""

from app.learn import chapters, s6_stability

chapters.show(6, s6_stability.edge_of_stability_section)

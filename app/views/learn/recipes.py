"""Learn, chapter 3: What makes minima flat or sharp (app.learn.s3_recipes: two recipes of the
reader's choice; app.learn.s3_digits: the bundled digits SGD and SAM models)."""

from app.learn import chapters, s3_digits, s3_recipes

chapters.show(3, s3_recipes.what_makes_them, s3_digits.digits_pair_section)

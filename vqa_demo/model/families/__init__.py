"""The backbone families, one folder each; :mod:`vqa_demo.model.families.registry` lists them."""

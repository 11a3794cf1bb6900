#!/usr/bin/python3
"""Parses each stylesheet with tinycss2 and fails on any parse error or unknown at-rule."""
import sys

import tinycss2

failed = False
for path in sys.argv[1:]:
    rules = tinycss2.parse_stylesheet(open(path, encoding="utf-8").read(), skip_comments=True, skip_whitespace=True)
    for rule in rules:
        problem = None
        if rule.type == "error":
            problem = rule.message
        elif rule.type == "at-rule" and rule.lower_at_keyword not in ("media", "supports", "keyframes", "font-face"):
            problem = f"unknown at-rule @{rule.at_keyword}"
        elif rule.type == "qualified-rule":
            for d in tinycss2.parse_declaration_list(rule.content, skip_comments=True, skip_whitespace=True):
                if d.type == "error":
                    problem = d.message
                elif d.type == "declaration" and not [t for t in d.value if t.type not in ("whitespace", "comment")]:
                    problem = f"{d.name} has no value"
        if problem:
            print(f"{path}:{rule.source_line}: {problem}")
            failed = True
sys.exit(1 if failed else 0)

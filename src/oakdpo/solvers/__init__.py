"""Symbolic checkers: PrOntoQA rules live in oakdpo.verify; FOLIO (Z3) in oakdpo.solvers.folio."""

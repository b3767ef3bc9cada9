"""Fault injection and load scenarios (issue 7): each bounded in time, each recording its figures."""

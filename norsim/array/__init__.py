"""One NOR array and its periphery (fast mode: ``nor_array``; circuit mode: ``circuit``)."""

# norsim.config.sim imports norsim.array.config; load the config package first so that
# importing an array module before norsim.config does not hit a partial import.
import norsim.config  # noqa: F401

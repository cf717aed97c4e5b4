"""One prediction run: its configuration, planning groups, running a group, assembling
each input's output files, and the whole pipeline in one process (`pipeline`)."""

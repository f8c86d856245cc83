"""``edge-agent demo``: a simulated plant, a MaintainX stand-in and the agent on one machine,
with a scripted half minute of faults and a live view (see :mod:`.script`)."""

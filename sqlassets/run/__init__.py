"""Running assets: partitions and windows, the planner, the executor, materialization strategies, run state."""

"""Reading the Configuration Service the same way everywhere: a CE's queues and their options."""

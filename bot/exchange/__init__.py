"""Exchange adapters: the paper exchange now; ccxt is the only way to a real one."""

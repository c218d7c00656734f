"""Sensor drivers. Each is handed its bus and exposes start(now_ms) and read(now_ms) -> dict.

Readings carry their unit in the name (temperature_c, pressure_pa, pm2_5_ugm3, ...).
"""

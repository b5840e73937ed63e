"""Operations: backup and restore commands (built out with the operations work)."""

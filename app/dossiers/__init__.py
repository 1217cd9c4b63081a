"""Public-service procedures: the catalogue, dossiers, the ward staff workflow, deadlines."""

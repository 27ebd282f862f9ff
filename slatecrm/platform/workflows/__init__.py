"""Running workflows: the job engine (outbox, jobs, worker, runs, actions) and the delivery
parts it calls (templates, mail, signing, delivery)."""

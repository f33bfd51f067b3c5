"""Using a trained model: sampling text (``generate``) and labelling texts (``classify``)."""

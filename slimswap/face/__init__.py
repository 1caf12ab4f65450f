"""Face analysis: detection, landmarks, alignment, selection, masks and paste-back."""

"""tap-jaggaer: invoices (with their lines), receipts and suppliers read back from JAGGAER."""

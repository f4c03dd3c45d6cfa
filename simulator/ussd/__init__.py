"""USSD: sessions as the network keeps them (sans-IO), their SMPP and HTTP faces."""

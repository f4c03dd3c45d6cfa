"""The reference 1442 platform: a RapidPro stand-in (contacts, keyword triggers, flows,
broadcasts, opt-out, REST API v2 subset) that talks SMPP or Kannel's HTTP contract."""

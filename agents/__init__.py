"""bread's bounded contexts (order, pay, bakery, mypage) and what they share: the topic catalogue, events, settings."""

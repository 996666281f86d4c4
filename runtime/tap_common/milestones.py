"""Badge thresholds: the achievements consumer awards badges by them, and the activity consumer
announces a watch-time threshold the moment a viewer's SUMMARY crosses it."""

VIDEOS_10 = "videos_10"
HOURS_100 = "hours_100"
COMPLETED_VIDEOS_FOR_BADGE = 10
WATCH_SECONDS_FOR_BADGE = 100 * 3600

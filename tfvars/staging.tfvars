# staging: mid-sized, for release rehearsals and load tests at about a quarter
# of prod peak (~500 events/s). Only capacity values differ from dev/prod.
env          = "staging"
aws_region   = "us-east-1"
project_name = "tap"
owner        = "platform-team"
cost_center  = "streaming-analytics"
common_tags  = { DataClassification = "internal" }

# Network (same topology and CIDRs in every environment; env is in every name)
vpc_cidr               = "10.40.0.0/16"
public_subnet_cidrs    = ["10.40.0.0/24", "10.40.1.0/24", "10.40.2.0/24"]
private_subnet_cidrs   = ["10.40.16.0/20", "10.40.32.0/20", "10.40.48.0/20"]
num_availability_zones = 3

# API Gateway
api_name             = "viewing-api"
stage_name           = "v1"
throttle_rate_limit  = 1000
throttle_burst_limit = 2000

# Kinesis: ~500 events/s -> 1 shard by records, x2 headroom = 2 shards
activity_stream_name = "viewing-events"
stream_mode          = "PROVISIONED"
shard_count          = 2
retention_hours      = 24

# DynamoDB (on-demand: pay per request)
activity_table           = "user_activity"
recommendations_table    = "user_recommendations"
achievements_table       = "user_achievements"
catalog_table            = "content_catalog"
billing_mode             = "PAY_PER_REQUEST"
rcu                      = 5
wcu                      = 5
ttl_attribute            = "expires_at"
recommendation_ttl_hours = 24
deletion_protection      = true

# Lambda
event_processor_memory = 512
recommendations_memory = 1024
analytics_memory       = 512
achievements_memory    = 512
expiration_memory      = 512
timeout_s              = 30
runtime                = "python3.12"

# Redis: primary + 1 replica in two zones (automatic failover on)
node_type          = "cache.t4g.small"
num_cache_clusters = 2
engine_version     = "7.1"
auth_token_enabled = true

# Aurora Serverless v2
db_name                      = "streaming"
master_username              = "tapadmin"
instance_class               = "db.serverless"
min_capacity                 = 0.5
max_capacity                 = 8
backup_retention_days        = 7
preferred_maintenance_window = "sun:05:00-sun:06:00"

# SageMaker endpoint (owned by the ML team)
recommendations_endpoint_name = "tap-staging-recommendations"

# SNS / SQS
complete_topic             = "watched-complete"
notifications_topic        = "user-notifications"
analytics_queue_name       = "analytics"
achievements_queue_name    = "achievements"
visibility_timeout_seconds = 360
message_retention_seconds  = 345600

# EventBridge: nightly at 03:00 UTC
expiration_schedule_expression = "cron(0 3 * * ? *)"

# EventBridge: recommendation-cache refresh (Aurora -> Redis)
cache_refresh_schedule_expression = "rate(1 hour)"

# S3 / Athena
archive_bucket_name    = "archive"
thumbnails_bucket_name = "thumbnails"
lifecycle_glacier_days = 90
workgroup_name         = "analytics"
output_bucket          = "athena-results"

# CloudWatch / Secrets Manager
log_retention_days          = 365
alarm_latency_threshold     = 1500
secret_recovery_window_days = 7

# prod: sized for the stated peak with 2x headroom.
# Peak assumption: 60,000 concurrent viewers, each player posting a /watch
# heartbeat every 30 s plus pause/complete events -> ~2,000 events/s of
# ~0.5 KB (~1 MB/s). Kinesis: 1,000 records/s and 1 MB/s of writes per shard
# -> 2 shards, x2 headroom = 4 shards; API throttle 4,000 req/s (burst 8,000);
# each Kinesis consumer runs 4 shards x parallelization 2 = 8 concurrent
# batches. DynamoDB stays on-demand (spiky evening peaks; ~2k event items/s
# written transactionally is well inside on-demand table limits). Redis:
# primary + 2 replicas, one per zone. Aurora: 2-32 ACUs. Only capacity values
# differ from dev/staging.
env          = "prod"
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
throttle_rate_limit  = 4000
throttle_burst_limit = 8000

# Kinesis: 2,000 events/s -> 2 shards by records, x2 headroom = 4 shards
activity_stream_name = "viewing-events"
stream_mode          = "PROVISIONED"
shard_count          = 4
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
event_processor_memory = 1024
recommendations_memory = 2048
analytics_memory       = 1024
achievements_memory    = 1024
expiration_memory      = 1024
timeout_s              = 60
runtime                = "python3.12"

# Redis: primary + 2 replicas, one per zone (automatic failover, Multi-AZ)
node_type          = "cache.r7g.large"
num_cache_clusters = 3
engine_version     = "7.1"
auth_token_enabled = true

# Aurora Serverless v2
db_name                      = "streaming"
master_username              = "tapadmin"
instance_class               = "db.serverless"
min_capacity                 = 2
max_capacity                 = 32
backup_retention_days        = 7
preferred_maintenance_window = "sun:05:00-sun:06:00"

# SageMaker endpoint (owned by the ML team)
recommendations_endpoint_name = "tap-prod-recommendations"

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
cache_refresh_schedule_expression = "rate(15 minutes)"

# S3 / Athena
archive_bucket_name    = "archive"
thumbnails_bucket_name = "thumbnails"
lifecycle_glacier_days = 90
workgroup_name         = "analytics"
output_bucket          = "athena-results"

# CloudWatch / Secrets Manager
log_retention_days          = 365
alarm_latency_threshold     = 1000
secret_recovery_window_days = 7

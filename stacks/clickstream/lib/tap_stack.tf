###############################################################################
# tap_stack.tf: real-time clickstream, one topology for dev, staging and prod.
#
# Data flow (the file is ordered the same way):
#   producers in the private subnets -> Kinesis clickstream (interface endpoint, KMS)
#     -> stream_processor (private subnets; batch, bisect, partial failures, given-up bucket)
#        -> DynamoDB behaviour (gateway endpoint; provisioned with Application Auto Scaling, PITR):
#           each event per user and per page, counted once into hourly aggregates
#   internal clients -> internal ALB (private subnets, listener rules) -> insights_api (Lambda target)
#        -> the hourly aggregates of the last N hours (at most 2N items read per request)
#
# Peak: ~10,000 events/min (~167 events/s) with no event loss. Everything runs in private
# subnets; the only public subnets hold the NAT gateways (a NAT gateway must sit in a subnet
# routed to an internet gateway, so "no public subnets" is read as "nothing but NAT there").
###############################################################################

# -----------------------------------------------------------------------------
# Terraform and providers (provider and S3 backend configuration live in provider.tf)
# -----------------------------------------------------------------------------
terraform {
  required_version = ">= 1.10" # the S3 backend's use_lockfile (backend/<env>.hcl) arrived in 1.10

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = "~> 2.4"
    }
  }
}

# -----------------------------------------------------------------------------
# Variables: region, naming, tags and toggles
# -----------------------------------------------------------------------------
variable "aws_region" {
  description = "The single region of the stack (provider.tf reads it)."
  type        = string
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.aws_region))
    error_message = "aws_region must be an AWS region name such as us-east-1."
  }
}

variable "project_name" {
  description = "Project name, the first part of every resource name."
  type        = string
  default     = "clickstream"

  validation {
    # <project>-staging-insights names the ALB and its target group, which AWS limits to 32 characters.
    condition     = can(regex("^[a-z][a-z0-9-]{1,13}[a-z0-9]$", var.project_name))
    error_message = "project_name must be 3-15 lower-case letters, digits or hyphens, starting with a letter (the ALB's name, <project_name>-staging-insights, may not exceed 32 characters)."
  }
}

variable "environment" {
  description = "Deployment environment: dev, staging or prod (same topology in each)."
  type        = string
  default     = "dev"

  validation {
    condition     = contains(["dev", "staging", "prod"], var.environment)
    error_message = "environment must be one of dev, staging, prod."
  }
}

variable "unique_suffix" {
  description = "Suffix that makes global names (S3 buckets) unique, e.g. the account's short id."
  type        = string
  default     = "a1b2c3"

  validation {
    condition     = can(regex("^[a-z0-9]{4,12}$", var.unique_suffix))
    error_message = "unique_suffix must be 4-12 lower-case letters or digits."
  }
}

variable "tags" {
  description = "Tags merged into every resource; must include Owner and CostCenter."
  type        = map(string)
  default = {
    Owner      = "data-platform"
    CostCenter = "analytics"
  }

  validation {
    condition     = length(trimspace(lookup(var.tags, "Owner", ""))) > 0 && length(trimspace(lookup(var.tags, "CostCenter", ""))) > 0
    error_message = "tags must include non-empty Owner and CostCenter."
  }
}

variable "enable_alb_access_logs" {
  description = "Toggle: write the ALB's access logs to the stack's S3 bucket."
  type        = bool
  default     = true
}

variable "enable_ssh_from_admin_cidr" {
  description = "Toggle: let ssh_allowed_cidr reach port 22 in the private subnets (NACL and SG), for operators' bastions; off by default, since nothing in the stack runs SSH."
  type        = bool
  default     = false
}

variable "ssh_allowed_cidr" {
  description = "The only range SSH may come from when enable_ssh_from_admin_cidr is on (a private range)."
  type        = string
  default     = "10.0.0.0/24"

  validation {
    condition     = can(cidrnetmask(var.ssh_allowed_cidr)) && (can(regex("^10\\.", var.ssh_allowed_cidr)) || can(regex("^192\\.168\\.", var.ssh_allowed_cidr)) || can(regex("^172\\.(1[6-9]|2[0-9]|3[01])\\.", var.ssh_allowed_cidr)))
    error_message = "ssh_allowed_cidr must be a private (RFC 1918) IPv4 CIDR, never the internet."
  }
}

# -----------------------------------------------------------------------------
# Variables: network
# -----------------------------------------------------------------------------
variable "vpc_cidr" {
  description = "CIDR of the stack's VPC."
  type        = string
  default     = "10.70.0.0/16"

  validation {
    condition     = can(cidrnetmask(var.vpc_cidr))
    error_message = "vpc_cidr must be an IPv4 CIDR such as 10.70.0.0/16."
  }
}

variable "availability_zone_count" {
  description = "Availability zones used (2 or 3): one private subnet, one NAT subnet and one NAT gateway each."
  type        = number
  default     = 2

  validation {
    condition     = contains([2, 3], var.availability_zone_count)
    error_message = "availability_zone_count must be 2 or 3 (the ALB needs two zones)."
  }
}

# -----------------------------------------------------------------------------
# Variables: Kinesis and the processor
# -----------------------------------------------------------------------------
variable "shard_count" {
  description = "Kinesis shards. One shard takes 1,000 records/s and 1 MiB/s; ~167 events/s at peak needs one, two keep the peak under 10% of a shard's record rate and survive a hot partition key."
  type        = number
  default     = 2

  validation {
    condition     = var.shard_count >= 1 && var.shard_count <= 64 && floor(var.shard_count) == var.shard_count
    error_message = "shard_count must be a whole number between 1 and 64."
  }
}

variable "stream_retention_hours" {
  description = "How long the stream keeps records (the replay window if processing stops)."
  type        = number
  default     = 168

  validation {
    condition     = var.stream_retention_hours >= 24 && var.stream_retention_hours <= 8760
    error_message = "stream_retention_hours must be between 24 and 8760."
  }
}

variable "max_record_age_seconds" {
  description = "How long stream_processor's mapping retries a batch (errors, throttling, an outage) before giving its records up, with their data, to the given-up bucket. null: half of stream_retention_hours, so a given-up record is still in the stream when it is replayed."
  type        = number
  default     = null

  validation {
    condition     = var.max_record_age_seconds == null ? true : (var.max_record_age_seconds >= 60 && var.max_record_age_seconds <= 604800 && floor(var.max_record_age_seconds) == var.max_record_age_seconds)
    error_message = "max_record_age_seconds must be null or a whole number of seconds from 60 (Lambda's minimum) to 604800."
  }
}

variable "processor_memory_mb" {
  description = "Memory of stream_processor."
  type        = number
  default     = 512

  validation {
    condition     = var.processor_memory_mb >= 128 && var.processor_memory_mb <= 10240
    error_message = "processor_memory_mb must be between 128 and 10240."
  }
}

variable "insights_memory_mb" {
  description = "Memory of insights_api."
  type        = number
  default     = 256

  validation {
    condition     = var.insights_memory_mb >= 128 && var.insights_memory_mb <= 10240
    error_message = "insights_memory_mb must be between 128 and 10240."
  }
}

variable "batch_size" {
  description = "Records per stream_processor invocation (per shard)."
  type        = number
  default     = 500

  validation {
    condition     = var.batch_size >= 1 && var.batch_size <= 10000
    error_message = "batch_size must be between 1 and 10000."
  }
}

# -----------------------------------------------------------------------------
# Variables: DynamoDB capacity and auto scaling
# -----------------------------------------------------------------------------
variable "table_min_write_capacity" {
  description = "Lowest write capacity auto scaling keeps (each event writes two items)."
  type        = number
  default     = 50

  validation {
    condition     = var.table_min_write_capacity >= 1 && var.table_min_write_capacity <= 40000
    error_message = "table_min_write_capacity must be between 1 and 40000."
  }
}

variable "table_max_write_capacity" {
  description = "Highest write capacity auto scaling may set (peak: ~334 item writes/s)."
  type        = number
  default     = 1000

  validation {
    condition     = var.table_max_write_capacity >= 1 && var.table_max_write_capacity <= 40000
    error_message = "table_max_write_capacity must be between 1 and 40000."
  }
}

variable "table_min_read_capacity" {
  description = "Lowest read capacity auto scaling keeps."
  type        = number
  default     = 10

  validation {
    condition     = var.table_min_read_capacity >= 1 && var.table_min_read_capacity <= 40000
    error_message = "table_min_read_capacity must be between 1 and 40000."
  }
}

variable "table_max_read_capacity" {
  description = "Highest read capacity auto scaling may set."
  type        = number
  default     = 200

  validation {
    condition     = var.table_max_read_capacity >= 1 && var.table_max_read_capacity <= 40000
    error_message = "table_max_read_capacity must be between 1 and 40000."
  }
}

variable "autoscaling_target_utilization" {
  description = "Consumed/provisioned capacity (percent) that target tracking keeps."
  type        = number
  default     = 70

  validation {
    condition     = var.autoscaling_target_utilization >= 20 && var.autoscaling_target_utilization <= 90
    error_message = "autoscaling_target_utilization must be between 20 and 90."
  }
}

# -----------------------------------------------------------------------------
# Variables: ALB and observability
# -----------------------------------------------------------------------------
variable "alb_listener_port" {
  description = "Port of the internal ALB's listener."
  type        = number
  default     = 80

  validation {
    condition     = var.alb_listener_port >= 1 && var.alb_listener_port <= 65535
    error_message = "alb_listener_port must be a TCP port."
  }
}

variable "log_retention_days" {
  description = "Retention of every log group."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, ... 3653)."
  }
}

variable "deletion_protection" {
  description = "Deletion protection of the table and the ALB."
  type        = bool
  default     = true
}

# -----------------------------------------------------------------------------
# Data sources and packages
# -----------------------------------------------------------------------------
data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

data "aws_availability_zones" "available" {
  state = "available"

  filter {
    name   = "opt-in-status"
    values = ["opt-in-not-required"]
  }
}

# The account that delivers ALB access logs in this region.
data "aws_elb_service_account" "current" {}

data "archive_file" "lambda_package" {
  for_each = local.lambda_functions

  type             = "zip"
  source_dir       = "${path.module}/lambdas/${each.key}"
  output_path      = "${path.module}/.build/${each.key}.zip"
  output_file_mode = "0644"
  excludes         = ["__pycache__", "**/__pycache__/**", "**/*.pyc"]
}

data "archive_file" "layer" {
  type             = "zip"
  source_dir       = "${path.module}/.build/layer"
  output_path      = "${path.module}/.build/layer.zip"
  output_file_mode = "0644"
  excludes         = ["**/__pycache__/**", "**/*.pyc"]
}

# -----------------------------------------------------------------------------
# Locals: names, tags, CIDRs, flow constants, functions
# -----------------------------------------------------------------------------
locals {
  name_prefix = "${var.project_name}-${var.environment}"
  account_id  = data.aws_caller_identity.current.account_id
  partition   = data.aws_partition.current.partition
  region      = data.aws_region.current.name

  common_tags = merge(var.tags, {
    Project     = var.project_name
    Environment = var.environment
    ManagedBy   = "terraform"
  })

  # Private subnets take /20s from the bottom of the VPC, NAT subnets /28s from the top /24.
  azs = {
    for i in range(var.availability_zone_count) : format("az%d", i + 1) => {
      name         = try(data.aws_availability_zones.available.names[i], null)
      private_cidr = cidrsubnet(var.vpc_cidr, 4, i)
      nat_cidr     = cidrsubnet(cidrsubnet(var.vpc_cidr, 8, 255), 4, i)
    }
  }
  private_cidrs = [for az in values(local.azs) : az.private_cidr]

  names = {
    stream      = "${local.name_prefix}-events"
    table       = "${local.name_prefix}-behaviour"
    alb         = "${local.name_prefix}-insights"
    dlq         = "${local.name_prefix}-stream-failures"
    given_up    = "${local.name_prefix}-given-up-${var.unique_suffix}"
    logs_bucket = "${local.name_prefix}-alb-logs-${var.unique_suffix}"
    layer       = "${local.name_prefix}-common"
  }

  function_names = { for k in keys(local.lambda_functions) : k => "${local.name_prefix}-${replace(k, "_", "-")}" }

  # Records are given up (to the given-up bucket) at half the stream's retention at most.
  max_record_age_s = coalesce(var.max_record_age_seconds, floor(var.stream_retention_hours * 3600 / 2))

  # Constants of the event flow, the same in every environment.
  flow = {
    log_level              = "INFO"
    batching_window_s      = 1
    parallelization        = 2  # two batches per shard at once; order is kept per partition key
    retry_attempts         = -1 # poison is parked by the function: what fails here is transient
    dlq_retention_s        = 1209600
    given_up_expire_days   = 30 # a month to replay what was given up
    alb_idle_timeout_s     = 30
    scale_in_cooldown_s    = 60
    scale_out_cooldown_s   = 30
    alarm_period_s         = 60
    iterator_age_alarm_ms  = 60000
    https_port             = 443
    ephemeral_port_low     = 1024
    ephemeral_port_high    = 65535
    ssh_port               = 22
    alb_logs_prefix        = "alb"
    alb_logs_expire_days   = 90
    multi_value_headers_on = true
  }

  lambda_functions = {
    stream_processor = {
      memory      = var.processor_memory_mb
      timeout     = 60
      description = "Kinesis consumer: validates clickstream events, stores them per user and per page and counts each once into hourly aggregates; poison records go to the DLQ."
    }
    insights_api = {
      memory      = var.insights_memory_mb
      timeout     = 10
      description = "ALB target: a page's or a user's activity over the last hours, from the hourly aggregates."
    }
  }

  lambda_environment = {
    stream_processor = {
      ENVIRONMENT             = var.environment
      LOG_LEVEL               = local.flow.log_level
      POWERTOOLS_SERVICE_NAME = "stream_processor"
      BEHAVIOUR_TABLE         = local.names.table
      POISON_QUEUE_URL        = aws_sqs_queue.stream_failures.url
    }
    insights_api = {
      ENVIRONMENT             = var.environment
      LOG_LEVEL               = local.flow.log_level
      POWERTOOLS_SERVICE_NAME = "insights_api"
      BEHAVIOUR_TABLE         = local.names.table
    }
  }
}

# -----------------------------------------------------------------------------
# Network: VPC, private subnets, NAT-only subnets, routes, endpoints, flow logs
# -----------------------------------------------------------------------------
resource "aws_vpc" "this" {
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true # private DNS of the Kinesis interface endpoint

  tags = merge(local.common_tags, { Name = "${local.name_prefix}-vpc" })
}

resource "aws_default_security_group" "this" {
  vpc_id = aws_vpc.this.id

  tags = merge(local.common_tags, { Name = "${local.name_prefix}-default-locked" })
}

resource "aws_subnet" "private" {
  for_each = local.azs

  vpc_id                  = aws_vpc.this.id
  availability_zone       = each.value.name
  cidr_block              = each.value.private_cidr
  map_public_ip_on_launch = false

  tags = merge(local.common_tags, { Name = "${local.name_prefix}-private-${each.key}", Tier = "private" })

  lifecycle {
    precondition {
      condition     = each.value.name != null
      error_message = "availability_zone_count is larger than the zones available in the region."
    }
  }
}

# A NAT gateway must sit in a subnet routed to an internet gateway. These /28 subnets hold the
# NAT gateways and nothing else (no instance, function, endpoint or load balancer: tested), so
# every workload stays private and egress goes through NAT only.
resource "aws_subnet" "nat" {
  for_each = local.azs

  vpc_id                  = aws_vpc.this.id
  availability_zone       = each.value.name
  cidr_block              = each.value.nat_cidr
  map_public_ip_on_launch = false

  tags = merge(local.common_tags, { Name = "${local.name_prefix}-nat-${each.key}", Tier = "nat-only" })
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id

  tags = merge(local.common_tags, { Name = "${local.name_prefix}-igw" })
}

resource "aws_eip" "nat" {
  for_each = local.azs

  domain = "vpc"

  tags = merge(local.common_tags, { Name = "${local.name_prefix}-nat-${each.key}" })

  depends_on = [aws_internet_gateway.this]
}

resource "aws_nat_gateway" "this" {
  for_each = local.azs

  allocation_id = aws_eip.nat[each.key].id
  subnet_id     = aws_subnet.nat[each.key].id

  tags = merge(local.common_tags, { Name = "${local.name_prefix}-nat-${each.key}" })

  depends_on = [aws_internet_gateway.this]
}

resource "aws_route_table" "nat" {
  vpc_id = aws_vpc.this.id

  tags = merge(local.common_tags, { Name = "${local.name_prefix}-nat" })
}

resource "aws_route" "nat_internet" {
  route_table_id         = aws_route_table.nat.id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this.id
}

resource "aws_route_table_association" "nat" {
  for_each = local.azs

  subnet_id      = aws_subnet.nat[each.key].id
  route_table_id = aws_route_table.nat.id
}

# Each zone egresses through its own NAT gateway: losing a zone cuts off no other.
resource "aws_route_table" "private" {
  for_each = local.azs

  vpc_id = aws_vpc.this.id

  tags = merge(local.common_tags, { Name = "${local.name_prefix}-private-${each.key}" })
}

resource "aws_route" "private_nat" {
  for_each = local.azs

  route_table_id         = aws_route_table.private[each.key].id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.this[each.key].id
}

resource "aws_route_table_association" "private" {
  for_each = local.azs

  subnet_id      = aws_subnet.private[each.key].id
  route_table_id = aws_route_table.private[each.key].id
}

# DynamoDB through a gateway endpoint, Kinesis and SQS through interface endpoints: no data leaves
# the VPC. Each endpoint's policy admits only this stack's resource and the calls made on it, so
# the VPC cannot be used to reach another account's table, stream or queue.
locals {
  endpoint_policies = {
    dynamodb = {
      actions   = ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:DescribeTable"]
      resources = ["arn:${local.partition}:dynamodb:${local.region}:${local.account_id}:table/${local.names.table}"]
    }
    kinesis = {
      actions = ["kinesis:PutRecord", "kinesis:PutRecords", "kinesis:DescribeStream", "kinesis:DescribeStreamSummary",
      "kinesis:ListShards", "kinesis:GetShardIterator", "kinesis:GetRecords"]
      resources = ["arn:${local.partition}:kinesis:${local.region}:${local.account_id}:stream/${local.names.stream}"]
    }
    sqs = {
      actions   = ["sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"]
      resources = ["arn:${local.partition}:sqs:${local.region}:${local.account_id}:${local.names.dlq}"]
    }
  }
}

data "aws_iam_policy_document" "endpoint" {
  for_each = local.endpoint_policies

  statement {
    sid       = "ThisStacksResourceOnly"
    effect    = "Allow"
    actions   = each.value.actions
    resources = each.value.resources
    principals {
      type        = "AWS"
      identifiers = ["*"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:PrincipalAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_vpc_endpoint" "dynamodb" {
  vpc_id            = aws_vpc.this.id
  service_name      = "com.amazonaws.${local.region}.dynamodb"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = [for rt in aws_route_table.private : rt.id]
  policy            = data.aws_iam_policy_document.endpoint["dynamodb"].json

  tags = merge(local.common_tags, { Name = "${local.name_prefix}-dynamodb-gateway" })
}

resource "aws_vpc_endpoint" "kinesis" {
  vpc_id              = aws_vpc.this.id
  service_name        = "com.amazonaws.${local.region}.kinesis-streams"
  vpc_endpoint_type   = "Interface"
  private_dns_enabled = true
  subnet_ids          = [for s in aws_subnet.private : s.id]
  security_group_ids  = [aws_security_group.this["endpoints"].id]
  policy              = data.aws_iam_policy_document.endpoint["kinesis"].json

  tags = merge(local.common_tags, { Name = "${local.name_prefix}-kinesis-endpoint" })
}

resource "aws_vpc_endpoint" "sqs" {
  vpc_id              = aws_vpc.this.id
  service_name        = "com.amazonaws.${local.region}.sqs"
  vpc_endpoint_type   = "Interface"
  private_dns_enabled = true
  subnet_ids          = [for s in aws_subnet.private : s.id]
  security_group_ids  = [aws_security_group.this["endpoints"].id]
  policy              = data.aws_iam_policy_document.endpoint["sqs"].json

  tags = merge(local.common_tags, { Name = "${local.name_prefix}-sqs-endpoint" })
}

resource "aws_flow_log" "vpc" {
  vpc_id                   = aws_vpc.this.id
  traffic_type             = "ALL"
  log_destination_type     = "cloud-watch-logs"
  log_destination          = aws_cloudwatch_log_group.this["vpc_flow_logs"].arn
  iam_role_arn             = aws_iam_role.flow_logs.arn
  max_aggregation_interval = 60

  tags = merge(local.common_tags, { Name = "${local.name_prefix}-flow-logs" })
}

# -----------------------------------------------------------------------------
# Network: NACLs, the minimum east-west traffic
#
# private: in - the VPC to the ALB listener and to HTTPS (endpoints), return traffic on
#          ephemeral ports (NAT and AWS APIs answer there), SSH from ssh_allowed_cidr when on;
#          out - HTTPS anywhere (AWS APIs via endpoints and NAT), the listener port and
#          ephemeral ports within the VPC (answers to clients and to the ALB)
# nat:     in - HTTPS from the private subnets, return traffic from the internet;
#          out - HTTPS to the internet, ephemeral ports back to the private subnets
# -----------------------------------------------------------------------------
locals {
  nacl_rules = merge(
    {
      private_in_listener   = { nacl = "private", egress = false, number = 100, port_from = var.alb_listener_port, port_to = var.alb_listener_port, cidr = var.vpc_cidr }
      private_in_https      = { nacl = "private", egress = false, number = 110, port_from = local.flow.https_port, port_to = local.flow.https_port, cidr = var.vpc_cidr }
      private_in_ephemeral  = { nacl = "private", egress = false, number = 120, port_from = local.flow.ephemeral_port_low, port_to = local.flow.ephemeral_port_high, cidr = "0.0.0.0/0" }
      private_out_https     = { nacl = "private", egress = true, number = 100, port_from = local.flow.https_port, port_to = local.flow.https_port, cidr = "0.0.0.0/0" }
      private_out_listener  = { nacl = "private", egress = true, number = 110, port_from = var.alb_listener_port, port_to = var.alb_listener_port, cidr = var.vpc_cidr }
      private_out_ephemeral = { nacl = "private", egress = true, number = 120, port_from = local.flow.ephemeral_port_low, port_to = local.flow.ephemeral_port_high, cidr = var.vpc_cidr }
      nat_in_https_from_vpc = { nacl = "nat", egress = false, number = 100, port_from = local.flow.https_port, port_to = local.flow.https_port, cidr = var.vpc_cidr }
      nat_in_ephemeral      = { nacl = "nat", egress = false, number = 110, port_from = local.flow.ephemeral_port_low, port_to = local.flow.ephemeral_port_high, cidr = "0.0.0.0/0" }
      nat_out_https         = { nacl = "nat", egress = true, number = 100, port_from = local.flow.https_port, port_to = local.flow.https_port, cidr = "0.0.0.0/0" }
      nat_out_ephemeral_vpc = { nacl = "nat", egress = true, number = 110, port_from = local.flow.ephemeral_port_low, port_to = local.flow.ephemeral_port_high, cidr = var.vpc_cidr }
    },
    var.enable_ssh_from_admin_cidr ? {
      private_in_ssh = { nacl = "private", egress = false, number = 130, port_from = local.flow.ssh_port, port_to = local.flow.ssh_port, cidr = var.ssh_allowed_cidr }
    } : {},
  )
}

resource "aws_network_acl" "this" {
  for_each = {
    private = [for s in aws_subnet.private : s.id]
    nat     = [for s in aws_subnet.nat : s.id]
  }

  vpc_id     = aws_vpc.this.id
  subnet_ids = each.value

  tags = merge(local.common_tags, { Name = "${local.name_prefix}-${each.key}" })
}

resource "aws_network_acl_rule" "this" {
  for_each = local.nacl_rules

  network_acl_id = aws_network_acl.this[each.value.nacl].id
  egress         = each.value.egress
  rule_number    = each.value.number
  protocol       = "tcp"
  rule_action    = "allow"
  cidr_block     = each.value.cidr
  from_port      = each.value.port_from
  to_port        = each.value.port_to
}

# -----------------------------------------------------------------------------
# Security: KMS key (stream, queue, logs) and security groups
# -----------------------------------------------------------------------------
data "aws_iam_policy_document" "kms" {
  statement {
    sid    = "AccountRootAdministersKey"
    effect = "Allow"
    actions = [
      "kms:CancelKeyDeletion", "kms:CreateAlias", "kms:CreateGrant", "kms:Decrypt", "kms:DeleteAlias",
      "kms:DescribeKey", "kms:DisableKey", "kms:DisableKeyRotation", "kms:EnableKey", "kms:EnableKeyRotation",
      "kms:Encrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:GetKeyPolicy",
      "kms:GetKeyRotationStatus", "kms:ListAliases", "kms:ListGrants", "kms:ListKeyPolicies", "kms:ListResourceTags",
      "kms:PutKeyPolicy", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:RetireGrant", "kms:RevokeGrant",
      "kms:ScheduleKeyDeletion", "kms:TagResource", "kms:UntagResource", "kms:UpdateAlias", "kms:UpdateKeyDescription",
    ]
    resources = ["*"] # in a key policy "*" is the key itself
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  # CloudWatch publishes alarm notifications to the encrypted alarms topic: "the key policy must
  # allow cloudwatch.amazonaws.com kms:Decrypt and kms:GenerateDataKey*" (CloudWatch User Guide,
  # "Using Amazon CloudWatch alarms", encrypted SNS topics).
  statement {
    sid       = "CloudWatchPublishesToTheEncryptedAlarmTopic"
    effect    = "Allow"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }

  statement {
    sid       = "CloudWatchLogsEncryptsThisStacksLogGroups"
    effect    = "Allow"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*${local.name_prefix}*"]
    }
  }
}

resource "aws_kms_key" "this" {
  description             = "Clickstream data and logs of ${local.name_prefix}"
  policy                  = data.aws_iam_policy_document.kms.json
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = 30

  tags = merge(local.common_tags, { Name = local.name_prefix })
}

resource "aws_kms_alias" "this" {
  name          = "alias/${local.name_prefix}"
  target_key_id = aws_kms_key.this.key_id
}

locals {
  security_groups = {
    alb       = "Internal ALB (listener port from the VPC only)"
    insights  = "insights_api (no ingress: the ALB invokes it through Lambda)"
    processor = "stream_processor (egress only)"
    endpoints = "Kinesis interface endpoint (HTTPS from the VPC only)"
  }

  # Each rule has one peer: a CIDR, a security group or a prefix list. The functions reach DynamoDB
  # through the gateway endpoint's prefix list and SQS through the endpoints' group, nothing else;
  # the endpoints admit HTTPS from the private subnets (producers and the functions) only.
  security_group_rules = merge(
    {
      alb_in_listener     = { sg = "alb", type = "ingress", port = var.alb_listener_port, cidr = var.vpc_cidr, peer = null, prefix_list = false, description = "Internal clients" }
      processor_out_table = { sg = "processor", type = "egress", port = local.flow.https_port, cidr = null, peer = null, prefix_list = true, description = "DynamoDB through the gateway endpoint" }
      processor_out_sqs   = { sg = "processor", type = "egress", port = local.flow.https_port, cidr = null, peer = "endpoints", prefix_list = false, description = "SQS (parked records) through its endpoint" }
      insights_out_table  = { sg = "insights", type = "egress", port = local.flow.https_port, cidr = null, peer = null, prefix_list = true, description = "DynamoDB through the gateway endpoint" }
    },
    { for k, subnet in local.azs : "endpoints_in_https_${k}" => { sg = "endpoints", type = "ingress", port = local.flow.https_port, cidr = subnet.private_cidr, peer = null, prefix_list = false, description = "Producers and functions in private subnet ${k}" } },
    var.enable_ssh_from_admin_cidr ? {
      endpoints_in_ssh = { sg = "endpoints", type = "ingress", port = local.flow.ssh_port, cidr = var.ssh_allowed_cidr, peer = null, prefix_list = false, description = "Operators' bastion range" }
    } : {},
  )
}

resource "aws_security_group" "this" {
  for_each = local.security_groups

  name        = "${local.name_prefix}-${each.key}"
  description = each.value
  vpc_id      = aws_vpc.this.id

  tags = merge(local.common_tags, { Name = "${local.name_prefix}-${each.key}" })
}

resource "aws_vpc_security_group_ingress_rule" "this" {
  for_each = { for k, r in local.security_group_rules : k => r if r.type == "ingress" }

  security_group_id            = aws_security_group.this[each.value.sg].id
  cidr_ipv4                    = each.value.cidr
  referenced_security_group_id = each.value.peer == null ? null : aws_security_group.this[each.value.peer].id
  prefix_list_id               = each.value.prefix_list ? aws_vpc_endpoint.dynamodb.prefix_list_id : null
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
  description                  = each.value.description

  tags = merge(local.common_tags, { Name = "${local.name_prefix}-${replace(each.key, "_", "-")}" })
}

resource "aws_vpc_security_group_egress_rule" "this" {
  for_each = { for k, r in local.security_group_rules : k => r if r.type == "egress" }

  security_group_id            = aws_security_group.this[each.value.sg].id
  cidr_ipv4                    = each.value.cidr
  referenced_security_group_id = each.value.peer == null ? null : aws_security_group.this[each.value.peer].id
  prefix_list_id               = each.value.prefix_list ? aws_vpc_endpoint.dynamodb.prefix_list_id : null
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
  description                  = each.value.description

  tags = merge(local.common_tags, { Name = "${local.name_prefix}-${replace(each.key, "_", "-")}" })
}

# The ALB may only reach its Lambda target through the Lambda service: egress HTTPS within the VPC
# is not needed, so the ALB group has no egress rule at all.

# -----------------------------------------------------------------------------
# Security: IAM (one role per function, the flow-logs role)
# -----------------------------------------------------------------------------
data "aws_iam_policy_document" "lambda_assume" {
  statement {
    sid     = "LambdaAssumesRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

locals {
  lambda_statements = {
    stream_processor = [
      { sid = "ReadClickstream", actions = ["kinesis:DescribeStream", "kinesis:DescribeStreamSummary", "kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:ListShards", "kinesis:SubscribeToShard"], resources = [aws_kinesis_stream.events.arn] },
      # AWS forces "*": ListStreams has no resource type (the stream's ARN here never matches).
      { sid = "ListStreams", actions = ["kinesis:ListStreams"], resources = ["*"] },
      # TransactWriteItems is authorised per item as PutItem and UpdateItem; the distinct sketches are
      # read with BatchGetItem and GetItem and written with PutItem.
      { sid = "StoreAndCountBehaviour", actions = ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:GetItem", "dynamodb:BatchGetItem"], resources = [aws_dynamodb_table.behaviour.arn] },
      { sid = "ParkPoisonRecords", actions = ["sqs:SendMessage"], resources = [aws_sqs_queue.stream_failures.arn] },
      # Lambda writes the mapping's failure records with the function's role: "For an S3 destination:
      # s3:PutObject and s3:ListBucket" (kinesis-on-failure-destination.html), under aws/lambda/.
      { sid = "KeepGivenUpRecords", actions = ["s3:PutObject"], resources = ["${aws_s3_bucket.given_up.arn}/aws/lambda/*"] },
      { sid = "ListGivenUpRecords", actions = ["s3:ListBucket"], resources = [aws_s3_bucket.given_up.arn] },
      { sid = "UseStackKey", actions = ["kms:Decrypt", "kms:GenerateDataKey"], resources = [aws_kms_key.this.arn] },
    ]
    insights_api = [
      { sid = "ReadBehaviour", actions = ["dynamodb:Query"], resources = [aws_dynamodb_table.behaviour.arn] },
      # DynamoDB decrypts the table's key with the caller's own kms:Decrypt ("How Amazon DynamoDB uses
      # AWS KMS"): the key policy delegates to IAM, so without this every query is AccessDenied.
      {
        sid = "DecryptBehaviourThroughDynamoDB", actions = ["kms:Decrypt"], resources = [aws_kms_key.this.arn],
        conditions = [
          { test = "StringEquals", variable = "kms:ViaService", values = ["dynamodb.${local.region}.amazonaws.com"] },
          { test = "StringEquals", variable = "kms:EncryptionContext:aws:dynamodb:tableName", values = [aws_dynamodb_table.behaviour.name] },
        ]
      },
    ]
  }
}

data "aws_iam_policy_document" "lambda" {
  for_each = local.lambda_functions

  statement {
    sid       = "WriteOwnLogGroup"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this[each.key].arn}:*"]
  }

  statement {
    # AWS forces "*": Lambda's ENI calls in the VPC have no resource-level permissions.
    sid       = "ManageVpcNetworkInterfaces"
    effect    = "Allow"
    actions   = ["ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets", "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"]
    resources = ["*"]
  }

  statement {
    # AWS forces "*": X-Ray segments have no resource ARN.
    sid       = "WriteXRayTraces"
    effect    = "Allow"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }

  dynamic "statement" {
    for_each = local.lambda_statements[each.key]
    content {
      sid       = statement.value.sid
      effect    = "Allow"
      actions   = statement.value.actions
      resources = statement.value.resources
      dynamic "condition" {
        for_each = try(statement.value.conditions, [])
        content {
          test     = condition.value.test
          variable = condition.value.variable
          values   = condition.value.values
        }
      }
    }
  }
}

resource "aws_iam_role" "lambda" {
  for_each = local.lambda_functions

  name                 = "${local.function_names[each.key]}-role"
  description          = "Execution role of ${local.function_names[each.key]}"
  assume_role_policy   = data.aws_iam_policy_document.lambda_assume.json
  max_session_duration = 3600

  tags = local.common_tags
}

resource "aws_iam_role_policy" "lambda" {
  for_each = local.lambda_functions

  name   = "least-privilege"
  role   = aws_iam_role.lambda[each.key].id
  policy = data.aws_iam_policy_document.lambda[each.key].json
}

data "aws_iam_policy_document" "flow_logs_assume" {
  statement {
    sid     = "FlowLogsAssumeRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["vpc-flow-logs.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

data "aws_iam_policy_document" "flow_logs" {
  statement {
    sid       = "WriteFlowLogs"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = [aws_cloudwatch_log_group.this["vpc_flow_logs"].arn, "${aws_cloudwatch_log_group.this["vpc_flow_logs"].arn}:*"]
  }

  statement {
    # AWS forces "*": DescribeLogGroups has no resource-level permissions.
    sid       = "FindLogGroups"
    effect    = "Allow"
    actions   = ["logs:DescribeLogGroups"]
    resources = ["*"]
  }
}

resource "aws_iam_role" "flow_logs" {
  name                 = "${local.name_prefix}-flow-logs-role"
  description          = "VPC flow logs delivery to CloudWatch Logs"
  assume_role_policy   = data.aws_iam_policy_document.flow_logs_assume.json
  max_session_duration = 3600

  tags = local.common_tags
}

resource "aws_iam_role_policy" "flow_logs" {
  name   = "least-privilege"
  role   = aws_iam_role.flow_logs.id
  policy = data.aws_iam_policy_document.flow_logs.json
}

# -----------------------------------------------------------------------------
# Ingest: Kinesis clickstream
#
# Provisioned shards: one takes 1,000 records/s and 1 MiB/s of writes; the peak (~167 events/s
# of ~1 KiB) uses ~8% of one shard's record rate, so var.shard_count (2 by default) leaves ~12x
# headroom and room for a hot partition key. Retention is the replay window if processing stops.
# -----------------------------------------------------------------------------
resource "aws_kinesis_stream" "events" {
  name             = local.names.stream
  shard_count      = var.shard_count
  retention_period = var.stream_retention_hours
  encryption_type  = "KMS"
  kms_key_id       = aws_kms_key.this.arn

  stream_mode_details {
    stream_mode = "PROVISIONED"
  }

  tags = local.common_tags
}

# -----------------------------------------------------------------------------
# Process: stream_processor and its event source mapping
#
# No silent loss: partial batch responses retry only what failed, a failing batch is bisected
# down to the bad record, and poison records (not JSON, not an event) are parked by the function
# itself, with their data, in the stream_failures queue (14 days). What fails then is transient
# (an outage, throttling): the mapping retries it until the records' maximum age (half the
# stream's retention), then gives them up with their data to the given-up bucket, from which
# `python stacks/clickstream/tools/replay_given_up.py` puts them back on the stream. Writes are
# idempotent (keys carry the event id), so a retried or replayed record is never counted twice.
# -----------------------------------------------------------------------------
resource "aws_sqs_queue" "stream_failures" {
  name                              = local.names.dlq
  message_retention_seconds         = local.flow.dlq_retention_s
  kms_master_key_id                 = aws_kms_key.this.arn
  kms_data_key_reuse_period_seconds = 300

  tags = local.common_tags
}

resource "aws_s3_bucket" "given_up" {
  bucket        = local.names.given_up
  force_destroy = false

  tags = local.common_tags
}

resource "aws_s3_bucket_public_access_block" "given_up" {
  bucket                  = aws_s3_bucket.given_up.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "given_up" {
  bucket = aws_s3_bucket.given_up.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "given_up" {
  bucket = aws_s3_bucket.given_up.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "given_up" {
  bucket = aws_s3_bucket.given_up.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.this.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "given_up" {
  bucket = aws_s3_bucket.given_up.id

  rule {
    id     = "expire-replayed-records"
    status = "Enabled"

    filter {}

    expiration {
      days = local.flow.given_up_expire_days
    }

    noncurrent_version_expiration {
      noncurrent_days = local.flow.given_up_expire_days
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

data "aws_iam_policy_document" "given_up" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:ListBucket", "s3:DeleteObject"]
    resources = [aws_s3_bucket.given_up.arn, "${aws_s3_bucket.given_up.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "given_up" {
  bucket = aws_s3_bucket.given_up.id
  policy = data.aws_iam_policy_document.given_up.json
}

resource "aws_lambda_layer_version" "common" {
  layer_name               = local.names.layer
  description              = "aws-lambda-powertools, tap_common and clickstream_common"
  filename                 = data.archive_file.layer.output_path
  source_code_hash         = data.archive_file.layer.output_base64sha256
  compatible_runtimes      = ["python3.12"]
  compatible_architectures = ["x86_64"]
}

resource "aws_lambda_function" "this" {
  for_each = local.lambda_functions

  function_name    = local.function_names[each.key]
  description      = each.value.description
  role             = aws_iam_role.lambda[each.key].arn
  runtime          = "python3.12"
  handler          = "handler.lambda_handler"
  architectures    = ["x86_64"]
  filename         = data.archive_file.lambda_package[each.key].output_path
  source_code_hash = data.archive_file.lambda_package[each.key].output_base64sha256
  layers           = [aws_lambda_layer_version.common.arn]
  memory_size      = each.value.memory
  timeout          = each.value.timeout
  kms_key_arn      = aws_kms_key.this.arn

  environment {
    variables = local.lambda_environment[each.key]
  }

  vpc_config {
    subnet_ids         = [for s in aws_subnet.private : s.id]
    security_group_ids = [aws_security_group.this[each.key == "stream_processor" ? "processor" : "insights"].id]
  }

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.this[each.key].name
  }

  tags = merge(local.common_tags, { Function = each.key })

  depends_on = [aws_iam_role_policy.lambda, aws_cloudwatch_log_group.this]
}

resource "aws_lambda_event_source_mapping" "events" {
  function_name                      = aws_lambda_function.this["stream_processor"].function_name
  event_source_arn                   = aws_kinesis_stream.events.arn
  starting_position                  = "TRIM_HORIZON" # a (re)created mapping skips nothing still retained
  batch_size                         = var.batch_size
  maximum_batching_window_in_seconds = local.flow.batching_window_s
  parallelization_factor             = local.flow.parallelization
  bisect_batch_on_function_error     = true
  maximum_retry_attempts             = local.flow.retry_attempts
  maximum_record_age_in_seconds      = local.max_record_age_s
  function_response_types            = ["ReportBatchItemFailures"]

  destination_config {
    on_failure {
      destination_arn = aws_s3_bucket.given_up.arn
    }
  }

  tags = local.common_tags

  lifecycle {
    precondition {
      condition     = local.max_record_age_s * 2 <= var.stream_retention_hours * 3600
      error_message = "max_record_age_seconds must be at most half of stream_retention_hours (in seconds): a given-up record must still be in the stream when it is replayed."
    }
  }

  depends_on = [aws_iam_role_policy.lambda]
}

# -----------------------------------------------------------------------------
# Store: DynamoDB behaviour (provisioned, Application Auto Scaling, PITR)
#
#   pk USER#<user_id>, sk <timestamp>#<event_id>   one item per event, per user
#   pk PAGE#<page>,    sk <timestamp>#<event_id>   the same event, per page
#   pk AGG#PAGE#<page> / AGG#USER#<user_id>, sk <hour>#count | <hour>#distinct
#                      hourly counters and distinct sketches: what the insights read
# Writes per event at peak: two items in a transaction (2 x 2 WCU) plus its share of the counters
# and sketches (~1-2 WCU): ~6 WCU, ~1,000 WCU at ~167 events/s, inside prod's auto scaling maximum.
# -----------------------------------------------------------------------------
resource "aws_dynamodb_table" "behaviour" {
  name                        = local.names.table
  billing_mode                = "PROVISIONED"
  read_capacity               = var.table_min_read_capacity
  write_capacity              = var.table_min_write_capacity
  hash_key                    = "pk"
  range_key                   = "sk"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "pk"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.this.arn
  }

  tags = merge(local.common_tags, { Name = local.names.table })

  lifecycle {
    # Auto scaling owns the capacity once the table exists.
    ignore_changes = [read_capacity, write_capacity]

    precondition {
      condition     = var.table_min_write_capacity <= var.table_max_write_capacity && var.table_min_read_capacity <= var.table_max_read_capacity
      error_message = "table_min_write_capacity and table_min_read_capacity must not exceed their maximums."
    }
  }
}

locals {
  autoscaling = {
    write = { dimension = "dynamodb:table:WriteCapacityUnits", metric = "DynamoDBWriteCapacityUtilization", min = var.table_min_write_capacity, max = var.table_max_write_capacity }
    read  = { dimension = "dynamodb:table:ReadCapacityUnits", metric = "DynamoDBReadCapacityUtilization", min = var.table_min_read_capacity, max = var.table_max_read_capacity }
  }
}

resource "aws_appautoscaling_target" "table" {
  for_each = local.autoscaling

  service_namespace  = "dynamodb"
  resource_id        = "table/${aws_dynamodb_table.behaviour.name}"
  scalable_dimension = each.value.dimension
  min_capacity       = each.value.min
  max_capacity       = each.value.max

  tags = local.common_tags
}

resource "aws_appautoscaling_policy" "table" {
  for_each = local.autoscaling

  name               = "${local.name_prefix}-${each.key}-target-tracking"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.table[each.key].service_namespace
  resource_id        = aws_appautoscaling_target.table[each.key].resource_id
  scalable_dimension = aws_appautoscaling_target.table[each.key].scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.autoscaling_target_utilization
    scale_in_cooldown  = local.flow.scale_in_cooldown_s
    scale_out_cooldown = local.flow.scale_out_cooldown_s

    predefined_metric_specification {
      predefined_metric_type = each.value.metric
    }
  }
}

# -----------------------------------------------------------------------------
# Serve: internal ALB -> insights_api (Lambda target)
#
# internal = true: the ALB has private addresses only, in the private subnets of every zone.
# HTTP inside the VPC: HTTPS would need a certificate from a private CA, outside the spec.
# -----------------------------------------------------------------------------
resource "aws_s3_bucket" "alb_logs" {
  bucket        = local.names.logs_bucket
  force_destroy = false

  tags = local.common_tags
}

resource "aws_s3_bucket_public_access_block" "alb_logs" {
  bucket                  = aws_s3_bucket.alb_logs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "alb_logs" {
  bucket = aws_s3_bucket.alb_logs.id

  versioning_configuration {
    status = "Enabled"
  }
}

# ALB log delivery supports SSE-S3 only (not SSE-KMS).
resource "aws_s3_bucket_server_side_encryption_configuration" "alb_logs" {
  bucket = aws_s3_bucket.alb_logs.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "alb_logs" {
  bucket = aws_s3_bucket.alb_logs.id

  rule {
    id     = "expire-access-logs"
    status = "Enabled"

    filter {}

    expiration {
      days = local.flow.alb_logs_expire_days
    }

    noncurrent_version_expiration {
      noncurrent_days = local.flow.alb_logs_expire_days
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

data "aws_iam_policy_document" "alb_logs" {
  statement {
    sid       = "ElbWritesAccessLogs"
    effect    = "Allow"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.alb_logs.arn}/${local.flow.alb_logs_prefix}/AWSLogs/${local.account_id}/*"]
    principals {
      type        = "AWS"
      identifiers = [data.aws_elb_service_account.current.arn]
    }
  }

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:ListBucket"]
    resources = [aws_s3_bucket.alb_logs.arn, "${aws_s3_bucket.alb_logs.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "alb_logs" {
  bucket = aws_s3_bucket.alb_logs.id
  policy = data.aws_iam_policy_document.alb_logs.json
}

resource "aws_lb" "insights" {
  name                       = local.names.alb
  internal                   = true
  load_balancer_type         = "application"
  subnets                    = [for s in aws_subnet.private : s.id]
  security_groups            = [aws_security_group.this["alb"].id]
  idle_timeout               = local.flow.alb_idle_timeout_s
  drop_invalid_header_fields = true
  enable_deletion_protection = var.deletion_protection

  access_logs {
    bucket  = aws_s3_bucket.alb_logs.id
    prefix  = local.flow.alb_logs_prefix
    enabled = var.enable_alb_access_logs
  }

  tags = local.common_tags

  depends_on = [aws_s3_bucket_policy.alb_logs]
}

resource "aws_lb_target_group" "insights" {
  name        = "${local.name_prefix}-insights"
  target_type = "lambda"

  lambda_multi_value_headers_enabled = local.flow.multi_value_headers_on

  health_check {
    enabled             = true
    path                = "/health"
    matcher             = "200"
    interval            = 35
    timeout             = 30
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }

  tags = local.common_tags
}

resource "aws_lambda_permission" "alb" {
  statement_id  = "AllowInternalAlb"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this["insights_api"].function_name
  principal     = "elasticloadbalancing.amazonaws.com"
  source_arn    = aws_lb_target_group.insights.arn
}

resource "aws_lb_target_group_attachment" "insights" {
  target_group_arn = aws_lb_target_group.insights.arn
  target_id        = aws_lambda_function.this["insights_api"].arn

  depends_on = [aws_lambda_permission.alb]
}

resource "aws_lb_listener" "http" {
  load_balancer_arn = aws_lb.insights.arn
  port              = var.alb_listener_port
  protocol          = "HTTP"

  default_action {
    type = "fixed-response"

    fixed_response {
      content_type = "application/json"
      message_body = jsonencode({ error = "no such insight" })
      status_code  = "404"
    }
  }

  tags = local.common_tags
}

locals {
  listener_rules = {
    users = { priority = 10, paths = ["/users/*"], methods = ["GET"] }
    pages = { priority = 20, paths = ["/pages/*"], methods = ["GET"] }
    # The target group's health check path, answered by the function itself.
    health = { priority = 30, paths = ["/health"], methods = ["GET"] }
  }
}

resource "aws_lb_listener_rule" "insights" {
  for_each = local.listener_rules

  listener_arn = aws_lb_listener.http.arn
  priority     = each.value.priority

  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.insights.arn
  }

  condition {
    path_pattern {
      values = each.value.paths
    }
  }

  condition {
    http_request_method {
      values = each.value.methods
    }
  }

  tags = local.common_tags
}

# -----------------------------------------------------------------------------
# Observe: log groups and alarms (lag, parked records, throttling, target errors)
# -----------------------------------------------------------------------------
locals {
  log_group_names = merge(
    { for k, name in local.function_names : k => "/aws/lambda/${name}" },
    { vpc_flow_logs = "/aws/vpc/${local.name_prefix}/flow-logs" },
  )

  alarms = {
    iterator_age = {
      description = "stream_processor is more than a minute behind the stream"
      namespace   = "AWS/Lambda"
      metric      = "IteratorAge"
      dimensions  = { FunctionName = local.function_names["stream_processor"] }
      statistic   = "Maximum"
      threshold   = local.flow.iterator_age_alarm_ms
    }
    parked_records = {
      description = "Records parked in the stream_failures queue (poison or given up): replay them"
      namespace   = "AWS/SQS"
      metric      = "ApproximateNumberOfMessagesVisible"
      dimensions  = { QueueName = local.names.dlq }
      statistic   = "Maximum"
      threshold   = 1
    }
    write_throttles = {
      description = "Writes to the behaviour table throttled (auto scaling behind the load)"
      namespace   = "AWS/DynamoDB"
      metric      = "WriteThrottleEvents"
      dimensions  = { TableName = local.names.table }
      statistic   = "Sum"
      threshold   = 1
    }
    put_throttles = {
      description = "Producers throttled by the stream (shards too few)"
      namespace   = "AWS/Kinesis"
      metric      = "WriteProvisionedThroughputExceeded"
      dimensions  = { StreamName = local.names.stream }
      statistic   = "Sum"
      threshold   = 1
    }
    # When a Lambda target fails, the ALB itself answers 502 (ALB User Guide, "Lambda functions as
    # targets"), which HTTPCode_ELB_5XX_Count counts ("5XX server error codes that originate from
    # the load balancer", "CloudWatch metrics for your Application Load Balancer"); the target
    # 5xx count never sees it.
    alb_5xx = {
      description = "Requests to the insights ALB that failed (insights_api errors and timeouts are the ALB's 502)"
      namespace   = "AWS/ApplicationELB"
      metric      = "HTTPCode_ELB_5XX_Count"
      dimensions  = { LoadBalancer = aws_lb.insights.arn_suffix }
      statistic   = "Sum"
      threshold   = 1
    }
  }

  # Every function's failed and throttled invocations.
  function_alarms = merge([for k, name in local.function_names : {
    "${k}_errors" = {
      description = "${k} invocations failed (an unhandled error or a timeout)"
      namespace   = "AWS/Lambda"
      metric      = "Errors"
      dimensions  = { FunctionName = name }
      statistic   = "Sum"
      threshold   = 1
    }
    "${k}_throttles" = {
      description = "${k} invocations throttled (concurrency exhausted)"
      namespace   = "AWS/Lambda"
      metric      = "Throttles"
      dimensions  = { FunctionName = name }
      statistic   = "Sum"
      threshold   = 1
    }
  }]...)
}

resource "aws_cloudwatch_log_group" "this" {
  for_each = local.log_group_names

  name              = each.value
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn

  tags = local.common_tags
}

# Alarms notify one encrypted topic (subscribe the on-call's endpoints to it), on ALARM and on OK.
resource "aws_sns_topic" "alarms" {
  name              = "${local.name_prefix}-alarms"
  kms_master_key_id = aws_kms_key.this.arn

  tags = local.common_tags
}

data "aws_iam_policy_document" "alarms_topic" {
  statement {
    sid       = "CloudWatchAlarmsOfThisAccountPublish"
    effect    = "Allow"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alarms.arn]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_sns_topic_policy" "alarms" {
  arn    = aws_sns_topic.alarms.arn
  policy = data.aws_iam_policy_document.alarms_topic.json
}

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each = merge(local.alarms, local.function_alarms)

  alarm_name          = "${local.name_prefix}-${replace(each.key, "_", "-")}"
  alarm_description   = each.value.description
  namespace           = each.value.namespace
  metric_name         = each.value.metric
  dimensions          = each.value.dimensions
  statistic           = each.value.statistic
  period              = local.flow.alarm_period_s
  evaluation_periods  = 3
  datapoints_to_alarm = 2
  threshold           = each.value.threshold
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]

  tags = local.common_tags
}

# -----------------------------------------------------------------------------
# Outputs: ids, ARNs and endpoints of every key resource
# -----------------------------------------------------------------------------
output "vpc_id" {
  description = "The stack's VPC."
  value       = aws_vpc.this.id
}

output "private_subnet_ids" {
  description = "Private subnets (functions, ALB, endpoint)."
  value       = [for s in aws_subnet.private : s.id]
}

output "nat_subnet_ids" {
  description = "The NAT-only subnets."
  value       = [for s in aws_subnet.nat : s.id]
}

output "given_up_bucket" {
  description = "Where the stream mapping gives up records, with their data (replay: stacks/clickstream/tools/replay_given_up.py)."
  value       = aws_s3_bucket.given_up.id
}

output "nat_gateway_ids" {
  description = "One NAT gateway per zone."
  value       = [for n in aws_nat_gateway.this : n.id]
}

output "kinesis_stream_name" {
  description = "Stream producers write to."
  value       = aws_kinesis_stream.events.name
}

output "kinesis_stream_arn" {
  description = "ARN of the stream."
  value       = aws_kinesis_stream.events.arn
}

output "kinesis_endpoint_id" {
  description = "Interface endpoint for Kinesis in the private subnets."
  value       = aws_vpc_endpoint.kinesis.id
}

output "dynamodb_table_name" {
  description = "Processed behavioural data."
  value       = aws_dynamodb_table.behaviour.name
}

output "dynamodb_table_arn" {
  description = "ARN of the behaviour table."
  value       = aws_dynamodb_table.behaviour.arn
}

output "stream_failures_queue_url" {
  description = "Poison and given-up records."
  value       = aws_sqs_queue.stream_failures.url
}

output "lambda_function_names" {
  description = "Function name of each function."
  value       = { for k, f in aws_lambda_function.this : k => f.function_name }
}

output "lambda_function_arns" {
  description = "ARN of each function."
  value       = { for k, f in aws_lambda_function.this : k => f.arn }
}

output "lambda_environment_variable_names" {
  description = "Names of the environment variables each function receives."
  value       = { for k, variables in local.lambda_environment : k => sort(keys(variables)) }
}

output "alb_arn" {
  description = "The internal ALB."
  value       = aws_lb.insights.arn
}

output "alb_dns_name" {
  description = "Internal DNS name of the ALB (resolvable inside the VPC)."
  value       = aws_lb.insights.dns_name
}

output "alb_url" {
  description = "Base URL of the insights API behind the ALB."
  value       = "http://${aws_lb.insights.dns_name}:${var.alb_listener_port}"
}

output "target_group_arn" {
  description = "The insights_api target group."
  value       = aws_lb_target_group.insights.arn
}

output "alb_logs_bucket" {
  description = "Bucket of the ALB's access logs."
  value       = aws_s3_bucket.alb_logs.id
}

output "kms_key_arn" {
  description = "The stack's key."
  value       = aws_kms_key.this.arn
}

output "alarm_names" {
  description = "Name of each alarm."
  value       = { for k, a in aws_cloudwatch_metric_alarm.this : k => a.alarm_name }
}

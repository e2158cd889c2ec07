#include "common/logging.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ecliptix {
namespace {

using ::testing::HasSubstr;

TEST(LoggingTest, AcceptsEveryLevelAndFormat) {
  for (absl::string_view level :
       {"trace", "debug", "info", "warn", "error", "off"}) {
    for (absl::string_view format : {"text", "json"}) {
      EXPECT_TRUE(ConfigureLogging(level, format).ok())
          << level << " " << format;
    }
  }
  EXPECT_TRUE(ConfigureLogging("info", "text").ok());
}

TEST(LoggingTest, RejectsAnUnknownLevelAndNamesIt) {
  const absl::Status status = ConfigureLogging("verbose", "text");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("\"verbose\""));
  EXPECT_THAT(status.message(),
              HasSubstr("trace, debug, info, warn, error or off"));
  EXPECT_EQ(ConfigureLogging("", "text").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ConfigureLogging("INFO ", "text").code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(LoggingTest, RejectsAnUnknownFormatAndNamesIt) {
  const absl::Status status = ConfigureLogging("info", "xml");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("\"xml\""));
  EXPECT_THAT(status.message(), HasSubstr("text or json"));
}

TEST(LoggingTest, ARejectedConfigurationChangesNothing) {
  ASSERT_TRUE(ConfigureLogging("warn", "text").ok());
  std::shared_ptr<spdlog::logger> logger = Logger("logging_test.unchanged");
  EXPECT_FALSE(ConfigureLogging("info", "xml").ok());
  EXPECT_FALSE(ConfigureLogging("loud", "json").ok());
  EXPECT_EQ(logger->level(), spdlog::level::warn);
  ASSERT_TRUE(ConfigureLogging("info", "text").ok());
}

TEST(LoggingTest, OneLoggerPerComponentAndLevelsApplyToAll) {
  ASSERT_TRUE(ConfigureLogging("info", "text").ok());
  std::shared_ptr<spdlog::logger> registry = Logger("logging_test.registry");
  EXPECT_EQ(registry, Logger("logging_test.registry"));
  EXPECT_NE(registry, Logger("logging_test.other"));
  EXPECT_EQ(registry->name(), "logging_test.registry");
  EXPECT_EQ(registry->level(), spdlog::level::info);
  // Existing loggers follow a new configuration, and later ones start with it.
  ASSERT_TRUE(ConfigureLogging("debug", "json").ok());
  EXPECT_EQ(registry->level(), spdlog::level::debug);
  EXPECT_EQ(Logger("logging_test.later")->level(), spdlog::level::debug);
  ASSERT_TRUE(ConfigureLogging("info", "text").ok());
}

TEST(JsonEscapeTest, EscapesWhatJsonRequires) {
  EXPECT_EQ(JsonEscape("plain"), "plain");
  EXPECT_EQ(JsonEscape("a \"quoted\" \\ path"), "a \\\"quoted\\\" \\\\ path");
  EXPECT_EQ(JsonEscape("line\nnext\r\ttab"), "line\\nnext\\r\\ttab");
  EXPECT_EQ(JsonEscape(std::string("nul\0bell\x07", 9)),
            "nul\\u0000bell\\u0007");
  // UTF-8 passes through untouched.
  EXPECT_EQ(JsonEscape("région"), "région");
}

}  // namespace
}  // namespace ecliptix

FROM maven:3.9-eclipse-temurin-17 AS build
WORKDIR /src
COPY pom.xml .
RUN mvn -B dependency:go-offline
COPY src ./src
RUN mvn -B package -DskipTests && cp target/*.jar /app.jar
RUN export JAR_SIZE=$(du -h /app.jar | cut -f1) && echo "jar is $JAR_SIZE"

FROM eclipse-temurin:17-jre
ENV JAVA_OPTS=""
COPY --from=build /app.jar /opt/app.jar
RUN useradd -m app
USER app
HEALTHCHECK CMD wget -qO- http://localhost:8080/health || exit 1
ENTRYPOINT exec java $JAVA_OPTS -jar /opt/app.jar
